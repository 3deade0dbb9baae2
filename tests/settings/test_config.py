"""The production profile refuses what is only safe on a laptop."""

from __future__ import annotations

import os

import pytest

from settings.config import DEFAULT_SECRET, Profile, Settings
from settings.errors import UnsafeProductionConfig


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("MOTCUA_")]:
        monkeypatch.delenv(name)


GOOD = {
    "profile": Profile.PRODUCTION,
    "database_url": "postgresql+psycopg://motcua@db/motcua",
    "broker_url": "redis://cache:6379/0",
    "secret_key": "x" * 40,
}


def test_embedded_defaults_need_no_service(tmp_path: object) -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.profile is Profile.EMBEDDED
    assert s.effective_database_url.startswith("sqlite:///")
    assert s.effective_broker_url.startswith("sqla+sqlite:///")
    assert s.sandboxes_on and s.dev_certificates_allowed
    assert s.check() is s


def test_production_with_good_settings_starts() -> None:
    s = Settings(_env_file=None, **GOOD)  # type: ignore[arg-type, call-arg]
    assert s.production_problems() == []
    assert not s.sandboxes_on and not s.dev_certificates_allowed


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"database_url": None}, "SQLite"),
        ({"database_url": "sqlite:////tmp/x.db"}, "SQLite"),
        ({"broker_url": "sqla+sqlite:////tmp/b.db"}, "Redis"),
        ({"secret_key": DEFAULT_SECRET}, "secret"),
        ({"secret_key": "short"}, "secret"),
        ({"sandboxes_enabled": True}, "sandboxes"),
        ({"allow_dev_certificates": True}, "development certificates"),
    ],
)
def test_production_refuses(change: dict[str, object], needle: str) -> None:
    s = Settings(_env_file=None, **{**GOOD, **change})  # type: ignore[arg-type, call-arg]
    with pytest.raises(UnsafeProductionConfig) as err:
        s.check()
    assert needle in str(err.value)


def test_env_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOTCUA_PROFILE", "production")
    monkeypatch.setenv("MOTCUA_DATABASE_URL", "sqlite:////tmp/x.db")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.profile is Profile.PRODUCTION
    assert s.production_problems()
