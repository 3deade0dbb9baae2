"""The tax-authority sandbox as its own process on 127.0.0.1, for the tests that send it a
01/TH-BLĐT: started on a free port with the test run's clock (libfaketime when moved), stopped
when the block ends. One helper for every such test, so they start it the same way."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .clock import subprocess_env
from .ports import free_port, wait_for_port

__all__ = ["sandbox_command", "tax_sandbox_process"]


def sandbox_command(port: int, data_dir: Path, ca_pem: Path | None = None) -> list[str]:
    """The sandbox's command line; ``ca_pem``: the CA it trusts for signed messages."""
    command = [sys.executable, "-m", "einvoice.tax_authority.sandbox"]
    command += ["--port", str(port), "--data-dir", str(data_dir)]
    if ca_pem is not None:
        command += ["--trusted-ca", str(ca_pem)]
    return command


@contextmanager
def tax_sandbox_process(data_dir: Path) -> Iterator[str]:
    """Yields the sandbox's base URL (``http://127.0.0.1:<port>``)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MOTCUA_PROFILE"}
    proc = subprocess.Popen(
        sandbox_command(port, data_dir),
        env=subprocess_env(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=15)
