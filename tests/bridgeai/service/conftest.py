"""The service tests' fixtures live in tests/support/service.py; this makes them visible here."""

from tests.support.service import (  # noqa: F401
    local_model,
    model_dir,
    model_server,
    own_model_server,
    pg_database_url,
)
