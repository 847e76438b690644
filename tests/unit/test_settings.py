import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from quantum_router.settings import Settings


def test_yaml_file_is_read_and_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "router.yaml"
    config.write_text("port: 9001\nepsilon: 0.2\n")
    monkeypatch.setenv("QR_CONFIG_FILE", str(config))
    monkeypatch.setenv("QR_EPSILON", "0.1")
    settings = Settings()
    assert settings.port == 9001
    assert settings.epsilon == 0.1


def test_production_refuses_missing_secrets() -> None:
    with pytest.raises(ValidationError, match="QR_JWT_SECRET"):
        Settings(environment="production")
    with pytest.raises(ValidationError, match="at least 32"):
        Settings(jwt_secret="short")


def test_secrets_do_not_show_in_repr() -> None:
    settings = Settings(jwt_secret="s" * 40, admin_password="hunter2-hunter2")
    assert "hunter2" not in repr(settings)
    assert "s" * 40 not in repr(settings)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        # CloudNativePG's `uri` secret key, and the libpq / Heroku spelling.
        ("postgresql://app:pw@db-rw.ns:5432/app", "postgresql+asyncpg://app:pw@db-rw.ns:5432/app"),
        ("postgres://app:pw@db-ro.ns:5432/app", "postgresql+asyncpg://app:pw@db-ro.ns:5432/app"),
        ("PostgreSQL://app@db/app", "postgresql+asyncpg://app@db/app"),
        # Anything naming its driver, or another database, is left alone.
        ("postgresql+asyncpg://app@db/app", "postgresql+asyncpg://app@db/app"),
        ("postgresql+psycopg://app@db/app", "postgresql+psycopg://app@db/app"),
        ("sqlite+aiosqlite:///var/postgresql://x.db", "sqlite+aiosqlite:///var/postgresql://x.db"),
    ],
)
def test_database_urls_get_the_asyncpg_driver(
    given: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QR_DATABASE_URL", given)
    monkeypatch.setenv("QR_DATABASE_REPLICA_URLS", json.dumps([given, "sqlite+aiosqlite:///r.db"]))
    settings = Settings()
    assert settings.database_url == expected
    assert settings.database_replica_urls == [expected, "sqlite+aiosqlite:///r.db"]
