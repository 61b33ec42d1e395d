import shared.audit  # noqa: F401 - registers the audit table on the security store's metadata
from shared import auth_roles
from shared.auth import metadata
from shared.migrate import run_env

run_env(metadata, after=auth_roles.apply)
