"""Property-based fuzzing of every operation in the OpenAPI schema: no input may cause a 500."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings

from quantum_router.app import create_app
from quantum_router.db.engine import Database
from quantum_router.db.migrate import upgrade
from quantum_router.users import create_api_key, ensure_admin
from tests.conftest import ADMIN_PASSWORD, make_settings

_DIR = Path(tempfile.mkdtemp(prefix="qr-fuzz-"))
_SETTINGS = make_settings(_DIR, rate_limit_burst=100_000, rate_limit_per_minute=100_000)


async def _prepare_api_key() -> str:
    db = Database(_SETTINGS)
    await upgrade(db.primary)
    await ensure_admin(db, "admin", ADMIN_PASSWORD)
    key = await create_api_key(db, "admin", "fuzz")
    await db.dispose()
    return key


API_KEY = asyncio.run(_prepare_api_key())
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(_SETTINGS))


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_causes_a_server_error(case: schemathesis.Case) -> None:
    response = case.call(headers={"X-API-Key": API_KEY})
    assert response.status_code != 500, response.text
    case.validate_response(response, checks=[schemathesis.checks.not_a_server_error])
