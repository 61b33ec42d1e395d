"""The published contracts under docs/contracts are those the code serves, and the AsyncAPI document names every event."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from services.cli_ops import contract_documents
from shared.events import EVENT_TYPES
from shared.topology import CONSUMER_QUEUES, NOTIFICATIONS

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "docs" / "contracts"
# scripts/test installs the reference AsyncAPI parser (JavaScript) here.
NODE_TOOLS = ROOT / ".venv" / "node-tools"
PARSE = """
const fs = require('fs');
const { Parser } = require(require.resolve('@asyncapi/parser', { paths: [process.argv[1]] }));
new Parser().parse(fs.readFileSync(process.argv[2], 'utf8')).then(({ document, diagnostics }) => {
  const problems = diagnostics.filter(d => d.severity <= 1).map(d => `${d.path.join('.')}: ${d.message}`);
  console.log(JSON.stringify({ parsed: !!document, problems, messages: document ? document.allMessages().all().map(m => m.name()) : [] }));
});
"""


@pytest.mark.parametrize("name", sorted(contract_documents()))
def test_the_committed_document_is_up_to_date(name):
    committed = FOLDER / name
    assert committed.exists(), f"{committed} is missing: run `baove contracts`"
    assert committed.read_text(encoding="utf-8") == contract_documents()[name], f"{name} is stale: run `baove contracts`"


def test_the_asyncapi_document_validates_with_the_asyncapi_parser():
    node = shutil.which("node")
    if node is None or not (NODE_TOOLS / "node_modules" / "@asyncapi" / "parser").exists():
        message = "the AsyncAPI parser is not installed: bash scripts/test installs it (npm)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    done = subprocess.run([node, "-e", PARSE, str(NODE_TOOLS), str(FOLDER / "asyncapi.json")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["parsed"] and not result["problems"], result["problems"]
    assert sorted(result["messages"]) == sorted(EVENT_TYPES)


class TestTheAsyncAPIDocument:
    document = json.loads((FOLDER / "asyncapi.json").read_text(encoding="utf-8"))

    def operations(self, action: str, event_type: str) -> list[str]:
        return [k for k, op in self.document["operations"].items() if op["action"] == action and op["channel"]["$ref"] == f"#/channels/{event_type}"]

    @pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
    def test_each_event_type_is_a_named_message_on_its_routing_key_with_its_payload_schema(self, event_type):
        title = EVENT_TYPES[event_type].__name__
        message = self.document["components"]["messages"][title]
        assert message["name"] == event_type and message["bindings"]["amqp"]["messageType"] == event_type
        channel = self.document["channels"][event_type]
        assert channel["address"] == event_type and channel["bindings"]["amqp"]["exchange"]["name"] == "baove.events"
        assert channel["messages"] == {title: {"$ref": f"#/components/messages/{title}"}}
        envelope, own = message["payload"]["allOf"]
        assert own["properties"]["payload"] == {"$ref": f"#/components/schemas/{title}"}
        assert set(self.document["components"]["schemas"][title]["properties"]) == set(EVENT_TYPES[event_type].model_fields)

    @pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
    def test_one_service_sends_it_and_each_bound_queue_receives_it(self, event_type):
        [send] = self.operations("send", event_type)
        assert send.split(".send.")[0] in ("intake", "routing", "reporting")
        receivers = {k.split(".receive.")[0] for k in self.operations("receive", event_type)}
        assert receivers <= {q.name for q in CONSUMER_QUEUES}
        assert bool(receivers) == (event_type not in NOTIFICATIONS)

    def test_who_receives_what(self):
        # The case (children's personal data) reaches routing only; reporting gets the same facts as incident.recorded.
        assert {k.split(".receive.")[0] for k in self.operations("receive", "incident.reported")} == {"routing.incidents"}
        assert {k.split(".receive.")[0] for k in self.operations("receive", "incident.recorded")} == {"reporting.events"}
        # A closing's outcome (free text) reaches intake's timeline and routing's own notifier; reporting gets its facts.
        assert {k.split(".receive.")[0] for k in self.operations("receive", "incident.closed")} == {"intake.timeline", "routing.notify"}
        assert {k.split(".receive.")[0] for k in self.operations("receive", "incident.closure_recorded")} == {"reporting.events"}
        assert self.operations("send", "report.generated") == ["reporting.send.report.generated"]
