"""Small helpers for benchmarks: timing loops bounded in count *and* time, and a result table.

Every figure is reported beside a baseline measured in the same run, because absolute numbers
drift between machines (performance.md).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Row:
    what: str
    ours: str
    baseline: str
    ratio: str
    goal: str = ""


@dataclass
class Table:
    rows: list[Row] = field(default_factory=list)

    def add(self, what: str, ours: str, baseline: str, ratio: str, goal: str = "") -> None:
        self.rows.append(Row(what, ours, baseline, ratio, goal))
        print(f"  {what}: {ours} | baseline {baseline} | ratio {ratio} {goal}", flush=True)

    def markdown(self) -> str:
        head = "| measure | ours | baseline (same run) | ratio | goal |\n|---|---|---|---|---|\n"
        body = "\n".join(
            f"| {r.what} | {r.ours} | {r.baseline} | {r.ratio} | {r.goal} |" for r in self.rows
        )
        return head + body + "\n"


def ms(value: float) -> str:
    """Milliseconds as the tables print them: whole above 100, one decimal below."""
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.1f} ms"


def rate(
    fn: Callable[[], object], *, max_n: int = 20_000, max_s: float = 3.0, warmup: int = 20
) -> float:
    """Operations per second, stopping at ``max_n`` calls or ``max_s`` seconds, whichever first."""
    for _ in range(warmup):
        fn()
    n = 0
    start = time.perf_counter()
    deadline = start + max_s
    while n < max_n:
        fn()
        n += 1
        if n % 16 == 0 and time.perf_counter() > deadline:
            break
    return n / (time.perf_counter() - start)


def machine() -> str:
    import os

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} vCPU, Python {platform.python_version()}"
