"""The published contracts under docs/contracts are those the code serves."""

from pathlib import Path

import pytest

from services.cli import contract_documents

pytestmark = pytest.mark.unit
FOLDER = Path(__file__).resolve().parents[2] / "docs" / "contracts"


@pytest.mark.parametrize("name", sorted(contract_documents()))
def test_the_committed_document_is_up_to_date(name):
    committed = FOLDER / name
    assert committed.exists(), f"{committed} is missing: run `baove contracts`"
    assert committed.read_text(encoding="utf-8") == contract_documents()[name], f"{name} is stale: run `baove contracts`"
