"""Scenario 6: 8 concurrent issuer processes on PostgreSQL running the worker's batch step.

Unlike ``tests/einvoice/test_numbering.py`` (the counter alone), each issuer is its own process
calling :func:`payments.tasks.issue_ready`, the batch step of the worker (claim with
``FOR UPDATE SKIP LOCKED``, numbers reserved per series in one statement, XML, XMLDSig with the
agency's non-development test certificate, order links, one commit), in a loop until no paid
order is left without a receipt (``fault_issuer.py``). The paid orders (copies of one order
made through the service layer, see ``Stack.paid_order_copies``) are many times ``MAX_BATCH``,
all of one agency, so every issuer draws numbers from the same series and the work straddles
many batch boundaries: full batches, batches cut short by what the others hold, and batches
naming orders another issuer is working on (each issuer names some of its neighbour's). Each
issuer's first batch with receipts, and one batch in ten after it, fails after its numbers were reserved and its receipts signed (rolled back).
Numbers must be exactly 1..8N, with one receipt per payment.
"""

from __future__ import annotations

import itertools
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fault_invariants import check_invariants, report
from fault_stack import Stack, log_tail, spawn, stop_group, wait_until

from payments.tasks import MAX_BATCH

SIZES = {"short": 300, "long": 5000}  # receipts per issuer
ISSUERS = 8
SCRIPT = Path(__file__).with_name("fault_issuer.py")


@pytest.mark.faults
@pytest.mark.postgres
def test_eight_concurrent_issuers(variant: str, stack_base: Stack) -> None:
    """No app, no worker: the issuers are the eight processes below."""
    stack = stack_base
    per_issuer = SIZES[variant]
    total = ISSUERS * per_issuer
    assert total > 2 * MAX_BATCH
    t0 = time.monotonic()
    orders = stack.paid_order_copies(total)
    created = time.monotonic() - t0
    workdir = stack.tmp / "issuers"
    workdir.mkdir()
    seed = random.randrange(10**6)
    deadline = 240.0 if variant == "short" else 1500.0
    (workdir / "plan.json").write_text(
        json.dumps(
            {
                "slices": [orders[i::ISSUERS] for i in range(ISSUERS)],
                "seed": seed,
                "deadline": deadline,
            }
        )
    )
    env = {**stack.child_env(), "PGAPPNAME": "faults-issuer"}
    procs = [
        spawn([sys.executable, str(SCRIPT), str(i), str(workdir)], env, workdir / f"{i}.log")
        for i in range(ISSUERS)
    ]
    try:
        ready = wait_until(
            lambda: all((workdir / f"ready-{i}").exists() for i in range(ISSUERS)),
            timeout=180,
            interval=0.1,
            what="the issuers to start",
        )
        assert ready, [log_tail(workdir / f"{i}.log", 5) for i in range(ISSUERS)]
        t1 = time.monotonic()
        (workdir / "go").touch()
        codes = [p.wait(timeout=max(1.0, deadline + 60 - (time.monotonic() - t1))) for p in procs]
        took = time.monotonic() - t1
    finally:
        for p in procs:
            if p.poll() is None:  # only a process still running (its pid is still ours)
                stop_group(p, timeout=5)
    results = [_result(workdir, i) for i in range(ISSUERS)]
    batches = [b for r in results for b in r["batches"]]
    sizes = [b["size"] for b in batches]
    by_series: dict[str, set[int]] = {}
    for r in results:
        for b in r["batches"]:
            for series in b["numbers"]:
                by_series.setdefault(series, set()).add(r["index"])
    handovers = _handovers(results)
    counts = check_invariants(stack.engine, None)
    report(
        f"issuers-8x{per_issuer}[{variant}]",
        counts,
        f"{ISSUERS} processes calling payments.tasks.issue_ready: batches committed="
        f"{len(batches)} (full {MAX_BATCH}={sizes.count(MAX_BATCH)}, max={max(sizes, default=0)}, "
        f"mean={sum(sizes) / max(1, len(sizes)):.0f}) rolled back after numbering="
        f"{sum(len(r['rolled_back']) for r in results)} batches / "
        f"{sum(sum(r['rolled_back']) for r in results)} receipts, empty calls="
        f"{sum(r['empty'] for r in results)}",
        f"series: {', '.join(f'{k} by {len(v)} issuers' for k, v in sorted(by_series.items()))}; "
        f"numbers changed issuer {handovers} times; at most "
        f"{_max_overlap(batches)} batches in progress at once",
        f"issued in {took:.1f}s ({total / took:.0f}/s; orders made in {created:.1f}s) seed={seed}",
    )
    assert codes == [0] * ISSUERS, [log_tail(workdir / f"{i}.log", 15) for i in range(ISSUERS)]
    assert counts.payments == total and counts.receipts == total
    assert counts.lost == 0 and counts.duplicate == 0 and counts.gaps == 0
    assert not counts.violations, counts.violations
    # the work really straddled batch boundaries, on one series shared by several issuers
    assert sum(sizes) == total
    # total // MAX_BATCH full batches is the best sharing possible (SKIP LOCKED on the ready
    # orders), so that is the floor, not a failure
    assert max(sizes) <= MAX_BATCH and len(batches) >= total // MAX_BATCH
    assert max(sizes) >= MAX_BATCH // 2  # real batches, not one receipt at a time
    assert any(len(v) >= 2 for v in by_series.values()), by_series
    assert sum(1 for r in results if r["batches"]) >= 2 and handovers >= ISSUERS // 2
    assert any(r["rolled_back"] for r in results)  # the failure injection did happen


def _result(workdir: Path, index: int) -> dict[str, Any]:
    path = workdir / f"result-{index}.json"
    assert path.exists(), log_tail(workdir / f"{index}.log", 15)
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _handovers(results: list[dict[str, Any]]) -> int:
    """How often consecutive receipt numbers of a series come from different issuers."""
    owner: dict[tuple[str, int], int] = {}
    for r in results:
        for b in r["batches"]:
            for series, numbers in b["numbers"].items():
                owner.update({(series, n): r["index"] for n in numbers})
    ordered = sorted(owner)
    return sum(1 for a, b in itertools.pairwise(ordered) if a[0] == b[0] and owner[a] != owner[b])


def _max_overlap(batches: list[dict[str, Any]]) -> int:
    """Most committed batches whose calls were running at the same moment."""
    edges = sorted([(b["start"], 1) for b in batches] + [(b["end"], -1) for b in batches])
    running = best = 0
    for _, step in edges:
        running += step
        best = max(best, running)
    return best
