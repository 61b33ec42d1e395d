"""Fixtures shared by the integration tests of one service's database and API."""

from tests.reporting_support import world  # noqa: F401  (reporting's generated reports and documents, in process)
