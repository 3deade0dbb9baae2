"""`motcua staff add` creates an account that can sign in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient
from infra.clock import subprocess_env

from settings.config import Settings

MOTCUA = str(Path(sys.executable).with_name("motcua"))


def test_staff_add_then_sign_in(client: TestClient, demo: Settings) -> None:
    env = subprocess_env({**os.environ, "MOTCUA_NEW_STAFF_PASSWORD": "mat-khau-dai-1234"})
    done = subprocess.run(
        [
            MOTCUA,
            "staff",
            "add",
            "--agency",
            "DEMO-HUYEN",
            "--username",
            "ketoan.ha",
            "--display-name",
            "Nguyễn Thu Hà",
            "--roles",
            "accountant",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    weak = subprocess.run(
        [
            MOTCUA,
            "staff",
            "add",
            "--agency",
            "DEMO-HUYEN",
            "--username",
            "x.y",
            "--display-name",
            "X",
            "--roles",
            "clerk",
        ],
        env=subprocess_env({**os.environ, "MOTCUA_NEW_STAFF_PASSWORD": "short"}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert weak.returncode != 0 and weak.stderr.startswith("motcua:")
    res = client.post(
        "/staff/login",
        data={"username": "ketoan.ha", "password": "mat-khau-dai-1234"},
        follow_redirects=False,
    )
    assert res.status_code == 303
    me = client.get("/staff/me").json()
    assert me["roles"] == ["accountant"] and me["agency_code"] == "DEMO-HUYEN"
