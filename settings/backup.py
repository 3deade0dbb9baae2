"""``motcua backup`` and ``motcua restore``: the database and the signing keys in one archive.

A receipt is only worth something with the key that signed it and the counter that numbered
it, so one archive holds both, taken together:

* the database: SQLite through the online backup API (a consistent copy while the service
  runs), PostgreSQL through ``pg_dump -Fc`` (Debian's client, same major as the server);
* the keys folder (``<data_dir>/keys``: the agencies' PKCS#12 files and the development CA),
  plus any PKCS#12 file an agency references from outside it (stored under
  ``keys/external/<agency>/``);
* ``manifest.json`` (what, from where, row counts per table) and ``SHA256SUMS`` (sha256sum
  format) over every other member.

``restore`` checks every checksum before it touches anything, refuses a target that already
holds data unless ``force`` is given, loads the database, puts the keys under the target's
data folder, points the agencies' key references there, brings the schema to the current
revision and compares the row counts with the manifest.

PKCS#11 keys (HSMs, USB tokens) are references only: they are listed in the manifest but the
key never leaves the token, so the same token must be present after a restore.

Where the key references are stored (which table, which columns) belongs to a package above
``settings``; the composition root (top layer) says so with :func:`register_key_references`,
and the tables to count come from the complete metadata it declared.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import Engine, Table, func, inspect, select, text, update
from sqlalchemy.engine import make_url

from settings.clock import utcnow
from settings.config import Settings
from settings.db import complete_metadata, engine_for
from settings.errors import ProblemError

__all__ = [
    "BackupError",
    "BackupReport",
    "KeyReferences",
    "RestoreReport",
    "backup",
    "register_key_references",
    "restore",
]

FORMAT = "motcua-backup/1"
PG_BIN = Path(os.environ.get("MOTCUA_PG_BIN", "/usr/lib/postgresql/15/bin"))
SQLITE_MEMBER = "database.sqlite3"
PG_MEMBER = "database.pgdump"
KEYS_PREFIX = "keys/"
PG_TIMEOUT_S = 3600


class BackupError(ProblemError):
    code = "backup_failed"
    status = 400
    title_vi = "Sao lưu hoặc khôi phục không thực hiện được"
    title_en = "Backup or restore failed"


@dataclass(frozen=True)
class KeyReferences:
    """The column holding each organisation's signing-key reference, keyed by its code."""

    table: str
    code: str
    ref: str

    def columns(self) -> Table:
        return complete_metadata().tables[self.table]


_key_references: list[KeyReferences] = []


def register_key_references(where: KeyReferences) -> None:
    """Tells backup and restore where signing-key references live (the composition root).

    One place only: the manifest maps an organisation's code to its reference, so two tables
    could not share it. Registering the same place again is a no-op (idempotent imports).
    """
    if _key_references and _key_references[0] != where:
        raise ValueError(f"key references are already registered at {_key_references[0]}")
    if not _key_references:
        _key_references.append(where)


def _key_references_or_fail() -> KeyReferences:
    """A backup without them would silently leave external PKCS#12 files out of the archive."""
    if not _key_references:
        raise RuntimeError(
            "no key references registered: import the composition root (the top layer) first"
        )
    return _key_references[0]


@dataclass
class BackupReport:
    path: Path
    dialect: str
    files: int
    rows: dict[str, int] = field(default_factory=dict)

    def text(self) -> str:
        return (
            f"backup written to {self.path}: {self.dialect} database "
            f"({sum(self.rows.values())} rows in {len(self.rows)} tables), {self.files} key file(s)"
        )


@dataclass
class RestoreReport:
    dialect: str
    rows: dict[str, int]
    keys: int
    rewritten_refs: list[str]

    def text(self) -> str:
        return (
            f"restored {self.dialect} database ({sum(self.rows.values())} rows in "
            f"{len(self.rows)} tables) and {self.keys} key file(s); "
            f"key references moved for: {', '.join(self.rewritten_refs) or 'none'}"
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _row_counts(engine: Engine) -> dict[str, int]:
    tables = complete_metadata().sorted_tables
    present = set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        return {
            t.name: int(conn.scalar(select(func.count()).select_from(t)) or 0)
            for t in tables
            if t.name in present
        }


def _pg_env_and_url(url: str) -> tuple[dict[str, str], str]:
    """libpq URL without the password (argv is visible to other users); password via env."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return env, plain.render_as_string(hide_password=False)


def _run(argv: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(  # noqa: S603 - fixed PostgreSQL client, our arguments
        argv, env=env, capture_output=True, text=True, timeout=PG_TIMEOUT_S, check=False
    )
    if result.returncode != 0:
        raise BackupError(f"{Path(argv[0]).name} failed: {result.stderr.strip()[:500]}")


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(database)


def _key_refs(engine: Engine) -> list[tuple[str, str]]:
    where = _key_references_or_fail()
    table = where.columns()
    code_col, ref_col = table.c[where.code], table.c[where.ref]
    with engine.connect() as conn:
        rows = conn.execute(select(code_col, ref_col).order_by(code_col))
        return [(str(code), str(ref)) for code, ref in rows if ref]


def _pkcs12_path(ref: str) -> tuple[Path, str] | None:
    """``pkcs12:/abs/org.p12?password-env=X`` → (path, "?password-env=X")."""
    if not ref.startswith("pkcs12:"):
        return None
    body = ref.removeprefix("pkcs12:")
    path, sep, query = body.partition("?")
    return Path(path), (sep + query)


def backup(settings: Settings, out: Path) -> BackupReport:
    """Writes one ``.tar.gz``; the service may keep running (both dumps are consistent)."""
    url = settings.effective_database_url
    engine = engine_for(url)
    dialect = engine.dialect.name
    keys_dir = settings.keys_dir.resolve()
    with tempfile.TemporaryDirectory(prefix="motcua-backup-") as tmp:
        work = Path(tmp)
        members: dict[str, Path] = {}
        if dialect == "sqlite":
            target = work / SQLITE_MEMBER
            source = sqlite3.connect(str(_sqlite_path(url)))
            copy = sqlite3.connect(str(target))
            try:
                with copy:
                    source.backup(copy)
            finally:
                copy.close()
                source.close()
            members[SQLITE_MEMBER] = target
        elif dialect == "postgresql":
            env, libpq = _pg_env_and_url(url)
            target = work / PG_MEMBER
            _run([str(PG_BIN / "pg_dump"), "-Fc", "--no-owner", "-f", str(target), libpq], env)
            members[PG_MEMBER] = target
        else:
            raise BackupError(f"unsupported database {dialect}")
        if keys_dir.is_dir():
            for path in sorted(keys_dir.rglob("*")):
                if path.is_file():
                    members[KEYS_PREFIX + path.relative_to(keys_dir).as_posix()] = path
        refs = _key_refs(engine)
        external: dict[str, str] = {}
        for code, ref in refs:
            found = _pkcs12_path(ref)
            if found is None or not found[0].is_file():
                continue
            path = found[0].resolve()
            if not path.is_relative_to(keys_dir):
                name = f"{KEYS_PREFIX}external/{code}/{path.name}"
                members[name] = path
                external[code] = name
        rows = _row_counts(engine)
        sums = {name: _sha256(path) for name, path in members.items()}
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "created_at": utcnow().isoformat(),
            "dialect": dialect,
            "database_member": SQLITE_MEMBER if dialect == "sqlite" else PG_MEMBER,
            "keys_dir": str(keys_dir),
            "key_refs": dict(refs),
            "external_keys": external,
            "rows": rows,
            "sha256": sums,
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        with tarfile.open(partial, "w:gz") as tar:
            _add_bytes(tar, "manifest.json", json.dumps(manifest, indent=2, sort_keys=True))
            _add_bytes(tar, "SHA256SUMS", "".join(f"{sums[n]}  {n}\n" for n in sorted(sums)))
            for name in sorted(members):
                tar.add(str(members[name]), arcname=name, recursive=False)
        partial.replace(out)  # never a half-written archive under the final name
    keys = sum(1 for n in members if n.startswith(KEYS_PREFIX))
    return BackupReport(out, dialect, keys, rows)


def _add_bytes(tar: tarfile.TarFile, name: str, content: str) -> None:
    data = content.encode("utf-8")
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    info.mtime = int(utcnow().timestamp())
    tar.addfile(info, io.BytesIO(data))


def _safe_name(name: str) -> str:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise BackupError(f"archive member {name!r} has an unsafe path")
    return path.as_posix()


def _members(tar: tarfile.TarFile) -> Iterator[tuple[str, tarfile.TarInfo]]:
    for info in tar.getmembers():
        if info.isdir():
            continue
        if not info.isfile():
            raise BackupError(f"archive member {info.name!r} is not a regular file")
        yield _safe_name(info.name), info


def _unpack(archive: Path, work: Path) -> dict[str, Any]:
    """Extracts into ``work`` and checks every checksum; returns the manifest."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            for name, info in _members(tar):
                source = tar.extractfile(info)
                if source is None:
                    raise BackupError(f"cannot read {name} from the archive")
                target = work / name
                target.parent.mkdir(parents=True, exist_ok=True)
                with source, target.open("wb") as fh:
                    shutil.copyfileobj(source, fh)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BackupError(f"{archive} is not a readable backup: {exc}") from exc
    try:
        manifest: dict[str, Any] = json.loads((work / "manifest.json").read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupError("the archive has no readable manifest.json") from exc
    if manifest.get("format") != FORMAT:
        raise BackupError(f"unknown backup format {manifest.get('format')!r}")
    sums: dict[str, str] = manifest.get("sha256", {})
    listed = {
        line.split("  ", 1)[1]: line.split("  ", 1)[0]
        for line in (work / "SHA256SUMS").read_text("utf-8").splitlines()
        if "  " in line
    }
    if listed != sums:
        raise BackupError("SHA256SUMS and manifest.json disagree")
    present = {
        p.relative_to(work).as_posix()
        for p in work.rglob("*")
        if p.is_file() and p.name not in ("manifest.json", "SHA256SUMS")
    }
    if present != set(sums):
        raise BackupError(
            f"archive members differ from the manifest: {sorted(present ^ set(sums))}"
        )
    for name, expected in sums.items():
        if _sha256(work / name) != expected:
            raise BackupError(f"checksum mismatch for {name}: the archive is damaged")
    return manifest


def _has_data(engine: Engine) -> bool:
    return any(n > 0 for n in _row_counts(engine).values())


def restore(settings: Settings, archive: Path, *, force: bool = False) -> RestoreReport:
    from settings.migrate import upgrade

    url = settings.effective_database_url
    engine = engine_for(url)
    dialect = engine.dialect.name
    keys_dir = settings.keys_dir.resolve()
    with tempfile.TemporaryDirectory(prefix="motcua-restore-") as tmp:
        work = Path(tmp)
        manifest = _unpack(archive, work)
        if manifest["dialect"] != dialect:
            raise BackupError(
                f"the backup is of a {manifest['dialect']} database; the target is {dialect}"
            )
        if not force:
            if _database_exists(engine, url) and _has_data(engine):
                raise BackupError("the target database is not empty (use --force to replace it)")
            if keys_dir.is_dir() and any(p.is_file() for p in keys_dir.rglob("*")):
                raise BackupError(f"{keys_dir} is not empty (use --force to replace it)")
        engine.dispose()
        if dialect == "sqlite":
            target = _sqlite_path(url)
            target.parent.mkdir(parents=True, exist_ok=True)
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{target}{suffix}").unlink(missing_ok=True)
            shutil.copyfile(work / SQLITE_MEMBER, target)
        else:
            with engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
            engine.dispose()
            env, libpq = _pg_env_and_url(url)
            _run(
                [
                    str(PG_BIN / "pg_restore"),
                    "--no-owner",
                    "--exit-on-error",
                    "--single-transaction",
                    "-d",
                    libpq,
                    str(work / PG_MEMBER),
                ],
                env,
            )
        if keys_dir.exists() and force:
            shutil.rmtree(keys_dir)
        keys = 0
        old_keys = Path(manifest["keys_dir"])
        moved: dict[str, Path] = {}
        for name in manifest["sha256"]:
            if not name.startswith(KEYS_PREFIX):
                continue
            relative = name.removeprefix(KEYS_PREFIX)
            target_file = keys_dir / relative
            target_file.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(work / name, target_file)
            target_file.chmod(0o600)
            keys += 1
        for code, name in manifest.get("external_keys", {}).items():
            moved[code] = keys_dir / name.removeprefix(KEYS_PREFIX)
        rewritten = _rewrite_refs(engine, old_keys, keys_dir, moved)
    upgrade(url)
    engine.dispose()
    rows = _row_counts(engine)
    expected: dict[str, int] = manifest["rows"]
    differ = {t: (n, rows.get(t)) for t, n in expected.items() if rows.get(t) != n}
    if differ:
        raise BackupError(f"row counts differ after restore (expected, found): {differ}")
    return RestoreReport(dialect, rows, keys, rewritten)


def _database_exists(engine: Engine, url: str) -> bool:
    if engine.dialect.name == "sqlite":
        return _sqlite_path(url).exists()
    return True


def _rewrite_refs(
    engine: Engine, old_keys: Path, new_keys: Path, moved: dict[str, Path]
) -> list[str]:
    """Points key references at the restored files (the data folder may have moved)."""
    changed: list[str] = []
    where = _key_references_or_fail()
    table = where.columns()
    code_col, ref_col = table.c[where.code], table.c[where.ref]
    with engine.begin() as conn:
        rows = conn.execute(select(code_col, ref_col)).all()
        for code, ref in rows:
            found = _pkcs12_path(str(ref or ""))
            if found is None:
                continue
            path, query = found
            if code in moved:
                new_path = moved[code]
            elif path.is_relative_to(old_keys):
                new_path = new_keys / path.relative_to(old_keys)
            else:
                continue
            new_ref = f"pkcs12:{new_path}{query}"
            if new_ref != ref:
                conn.execute(update(table).where(code_col == code).values({ref_col: new_ref}))
                changed.append(str(code))
    return changed
