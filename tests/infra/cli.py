"""The installed ``motcua`` command run as its own process, as an operator runs it.

Through :func:`infra.clock.subprocess_env`, so a moved run's clock (libfaketime) reaches the
child too; output captured as text and never raised on, so a test asserts on the exit code
and shows stdout/stderr when it fails.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .clock import subprocess_env

__all__ = ["MOTCUA", "run_motcua"]

MOTCUA = str(Path(sys.executable).with_name("motcua"))


def run_motcua(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MOTCUA, *args],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
