"""Backup and restore round trip on SQLite and PostgreSQL (issue 7, operations).

A receipt issued before the backup still verifies after the restore into a fresh database and
data folder (the original folder is deleted first, so the restored keys are the ones used),
and the next receipt continues the numbering without a gap. A non-empty target is refused
unless --force, and a damaged archive is refused before anything is touched.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from api.app import create_app
from api.cli import app as cli
from api.demo import seed
from settings.backup import BackupError, backup, restore
from settings.config import Settings, get_settings
from settings.db import engine_for
from settings.migrate import upgrade
from tests.security.sec_flow import AUTH, paid_order


@pytest.fixture
def source(settings: Settings) -> Settings:
    seed(settings)
    return settings


@pytest.fixture
def target(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Any]:
    """A second, empty installation: its own data folder and an empty database."""

    def switch() -> Settings:
        data = tmp_path / "restored-data"
        if backend == "sqlite":
            (tmp_path / "restored").mkdir(exist_ok=True)
            url = f"sqlite:///{tmp_path / 'restored' / 'motcua.sqlite3'}"
        else:
            url = request.getfixturevalue("pg_server").create_database(f"r{os.getpid()}")
        monkeypatch.setenv("MOTCUA_DATA_DIR", str(data))
        monkeypatch.setenv("MOTCUA_DATABASE_URL", url)
        get_settings.cache_clear()
        return get_settings()

    yield switch
    get_settings.cache_clear()
    if backend == "postgres":
        engine_for(get_settings().effective_database_url).dispose()
        request.getfixturevalue("pg_server").drop_database(f"r{os.getpid()}")


def _verify(client: TestClient, xml: bytes) -> dict[str, Any]:
    res = client.post("/api/v1/verify", files={"file": ("bien-lai.xml", xml, "application/xml")})
    assert res.status_code == 200, res.text
    body: dict[str, Any] = res.json()
    return body


def test_round_trip_keeps_receipts_valid_and_numbering_gapless(
    source: Settings, target: Any, tmp_path: Path
) -> None:
    with TestClient(create_app(source)) as client:
        first = paid_order(client, "bk-1")["receipt"]
        xml = client.get(f"/api/v1/receipts/{first['id']}/xml").content
    assert first["number"] == 1
    archive = tmp_path / "backup.tar.gz"
    made = CliRunner().invoke(cli, ["backup", "--out", str(archive)])
    assert made.exit_code == 0, made.output
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"manifest.json", "SHA256SUMS"} <= names
    assert any(n.startswith("keys/") and n.endswith("org.p12") for n in names)

    engine_for(source.effective_database_url).dispose()
    shutil.rmtree(source.data_dir)  # the old keys are gone: only the archive's can be used
    restored_settings: Settings = target()
    done = CliRunner().invoke(cli, ["restore", str(archive)])
    assert done.exit_code == 0, done.output
    assert "key references moved for: DEMO-HUYEN" in done.output
    with engine_for(restored_settings.effective_database_url).connect() as conn:
        ref = conn.execute(text("SELECT signing_key_ref FROM agencies")).scalar_one()
    assert ref.startswith(f"pkcs12:{restored_settings.keys_dir.resolve()}")

    with TestClient(create_app(restored_settings)) as client:
        result = _verify(client, xml)
        assert result["valid"] is True, result
        assert result["number"] == 1
        second = paid_order(client, "bk-2")["receipt"]
        assert (second["series"], second["number"]) == (first["series"], 2)  # no gap
        again = client.get(f"/api/v1/receipts/{second['id']}/xml").content
        assert _verify(client, again)["valid"] is True  # signed with the restored key
        assert client.get(f"/api/v1/receipts/{first['id']}", headers=AUTH).status_code == 200

    # the target now holds data: a second restore is refused unless forced
    refused = CliRunner().invoke(cli, ["restore", str(archive)])
    assert isinstance(refused.exception, BackupError)  # main() prints it and exits 1
    assert "not empty" in str(refused.exception)
    with pytest.raises(BackupError, match="not empty"):
        restore(restored_settings, archive)
    forced = restore(restored_settings, archive, force=True)
    assert forced.rows["receipts"] == 1  # back to the backup's state


def test_damaged_archive_is_refused_before_anything_changes(
    source: Settings, target: Any, tmp_path: Path
) -> None:
    with TestClient(create_app(source)) as client:
        paid_order(client, "bk-3")
    good = tmp_path / "good.tar.gz"
    backup(source, good)
    unpacked = tmp_path / "unpacked"
    with tarfile.open(good) as tar:
        tar.extractall(unpacked, filter="data")
    key = next(unpacked.rglob("org.p12"))
    data = key.read_bytes()
    key.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as tar:
        for path in sorted(unpacked.rglob("*")):
            if path.is_file():
                tar.add(str(path), arcname=path.relative_to(unpacked).as_posix())
    restored_settings: Settings = target()
    upgrade(restored_settings.effective_database_url)
    with pytest.raises(BackupError, match="checksum mismatch for keys/"):
        restore(restored_settings, bad)
    assert not restored_settings.keys_dir.exists()
    with engine_for(restored_settings.effective_database_url).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM agencies")).scalar_one() == 0

    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(str(key), arcname="../escape.p12")
    with pytest.raises(BackupError, match="unsafe path"):
        restore(restored_settings, evil)
    assert not (tmp_path / "escape.p12").exists()
