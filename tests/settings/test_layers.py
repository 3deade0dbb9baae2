"""``settings`` is the ground floor; the composition root (``api.composition``) knows the rest.

The checks that matter run in a fresh interpreter: this test session imports the composition
root in ``tests/conftest.py``, so in-process every registry is already full and would hide a
process (a worker, the Alembic CLI) that no longer gets its tables or tasks.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

from celery import signals
from sqlalchemy import MetaData

import api.composition as composition
from api.cli import _celery_argv
from settings import audit_chain
from settings.db import Base

ROOT = Path(__file__).resolve().parents[2]
ABOVE = ("signing", "einvoice", "payments", "reconciliation", "api")
PACKAGES = ("settings", *ABOVE)


def _python(code: str, tmp_path: Path) -> str:
    env = {"MOTCUA_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _settings_modules() -> list[str]:
    """Every module of ``settings`` but the migration scripts (Alembic loads those itself)."""
    return sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in (ROOT / "settings").rglob("*.py")
        if "migrations" not in p.parts and p.name != "__init__.py"
    )


def test_settings_imports_nothing_above_it(tmp_path: Path) -> None:
    """Every settings module, imported alone, pulls in no module of a package above it; and
    ``upgrade`` works in such a process (applying migrations needs no model)."""
    modules = _settings_modules()
    assert "settings.worker" in modules and "settings.backup" in modules
    out = _python(
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "from settings.migrate import upgrade\n"
        f"upgrade('sqlite:///{tmp_path}/alone.db')\n"
        f"above = sorted(m for m in sys.modules if m.split('.')[0] in {ABOVE!r})\n"
        "print(json.dumps(above))\n",
        tmp_path,
    )
    assert json.loads(out.splitlines()[-1]) == []


def _upper_tables() -> set[str]:
    own = {
        m.local_table.name
        for m in Base.registry.mappers
        if m.class_.__module__.split(".")[0] == "settings"
    }
    return set(composition.metadata().tables) - own


def _code_strings(tree: ast.AST) -> list[ast.Constant]:
    """String constants in code: docstrings (bare expression statements) are prose, not code."""
    prose = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose
    ]


def test_settings_names_no_module_table_or_task_above_it() -> None:
    """No import, and no string in code, naming an upper package's module, table or task: a
    string is an import the linter cannot see (``celery -A``, ``include``, raw SQL)."""
    tables = _upper_tables()
    assert "agencies" in tables and "receipts" in tables
    dotted = re.compile(rf"\b({'|'.join(ABOVE)})\.\w")
    found: list[str] = []
    for path in sorted((ROOT / "settings").rglob("*.py")):
        if "versions" in path.parts:
            continue  # the one Alembic history: it creates those tables by name, on purpose
        where = path.relative_to(ROOT)
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names.append(node.module)
                for name in names:
                    if name.split(".")[0] in ABOVE:
                        found.append(f"{where}:{node.lineno} imports {name}")
        for const in _code_strings(tree):
            text = const.value
            if dotted.search(text):
                found.append(f"{where}:{const.lineno} names {text!r}")
            for table in tables:
                # A table is named as a whole string ("agencies") or in SQL; prose such as a
                # setting's description ("an agency that issued receipts") is not a name.
                sql = rf'\b(FROM|JOIN|INTO|UPDATE|TABLE)\s+"?{re.escape(table)}\b'
                if text == table or re.search(sql, text):
                    found.append(f"{where}:{const.lineno} names table {table!r}")
    assert found == []


def _declaring_modules() -> set[str]:
    return {
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for package in PACKAGES
        for p in (ROOT / package).rglob("*.py")
        if "migrations" not in p.parts and "__tablename__" in p.read_text("utf-8")
    }


def test_composition_root_lists_every_model_module_and_gives_every_table(
    tmp_path: Path,
) -> None:
    listed = {m.__name__ for m in composition.MODEL_MODULES}
    assert _declaring_modules() == listed
    fresh = json.loads(
        _python(
            "import json, api.composition as c\nprint(json.dumps(sorted(c.metadata().tables)))\n",
            tmp_path,
        ).splitlines()[-1]
    )
    mapped = {m.local_table.name for m in Base.registry.mappers}
    assert isinstance(composition.metadata(), MetaData)
    assert set(fresh) == mapped == set(composition.metadata().tables)
    for source in composition.AUDIT_SOURCES:
        assert source.table in fresh
    assert audit_chain.sources() == composition.AUDIT_SOURCES
    refs = composition.KEY_REFERENCES.columns()
    assert {composition.KEY_REFERENCES.code, composition.KEY_REFERENCES.ref} <= set(refs.c.keys())


def _task_modules() -> set[str]:
    return {
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for package in PACKAGES
        for p in (ROOT / package).rglob("*.py")
        if "celery_app.task(" in p.read_text("utf-8")
    }


def test_worker_app_from_the_composition_root_has_every_task_and_the_schedule(
    tmp_path: Path,
) -> None:
    """What ``celery -A api.composition:celery_app worker|beat`` loads, in a fresh process: the
    task modules (and so the journal-poller hooks of ``payments.tasks``) and the beat schedule."""
    assert set(composition.TASK_MODULES) == _task_modules()
    app_arg = _celery_argv("worker")[_celery_argv("worker").index("-A") + 1]
    assert app_arg == "api.composition:celery_app"
    out = _python(
        "import json, weakref\n"
        "from celery.app.utils import find_app\n"
        "from celery import signals\n"
        f"app = find_app({app_arg!r})\n"
        "app.loader.import_default_modules()\n"
        "live = [r() if isinstance(r, weakref.ReferenceType) else r for sig in"
        " (signals.worker_process_init, signals.worker_ready) for _, r in sig.receivers]\n"
        "hooks = [f'{r.__module__}.{r.__qualname__}' for r in live if r is not None]\n"
        "print(json.dumps({'tasks': sorted(t for t in app.tasks if not t.startswith('celery.')),"
        " 'beat': app.conf.beat_schedule, 'hooks': hooks}))\n",
        tmp_path,
    )
    loaded = json.loads(out.splitlines()[-1])
    beat_tasks = {entry["task"] for entry in loaded["beat"].values()}
    assert loaded["beat"] == composition.BEAT_SCHEDULE
    assert beat_tasks <= set(loaded["tasks"])
    assert "payments.issue_receipt" in loaded["tasks"]
    assert "settings.audit_seal" in loaded["tasks"]
    assert "payments.tasks._poll_in_pool_child" in loaded["hooks"]
    assert "payments.tasks._poll_in_solo_worker" in loaded["hooks"]
    composition.import_tasks()
    assert set(loaded["tasks"]) <= set(composition.celery_app.tasks)
    assert signals.worker_ready.receivers


def test_alembic_gets_every_table_through_the_composition_root(tmp_path: Path) -> None:
    """Autogenerate finds nothing to do on a migrated database, given the metadata either way:
    by the caller (``alembic_config``) or by name (``-x composition=api.composition``)."""
    url = f"sqlite:///{tmp_path}/check.db"
    _python(
        "import argparse\n"
        "from alembic import command\n"
        "from settings.migrate import alembic_config, upgrade\n"
        f"upgrade({url!r})\n"
        f"cfg = alembic_config({url!r})\n"
        "cfg.cmd_opts = argparse.Namespace(x=['composition=api.composition'])\n"
        "command.check(cfg)\n"
        "import api.composition\n"
        f"command.check(api.composition.alembic_config({url!r}))\n",
        tmp_path,
    )
