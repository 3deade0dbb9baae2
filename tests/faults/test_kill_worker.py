"""Scenario 1: kill -9 the worker in the middle of a batch, again and again, restart it.

The worker issues receipts in batches (``payments.tasks.issue_ready``: journaled events claimed
with ``FOR UPDATE SKIP LOCKED``, numbers reserved per series in one statement, one commit).
Each round sends a burst of SePay webhooks (exact payments, a few under-payments and stray
credits, shuffled) through uvicorn in two parts, each journaled while the worker cannot take
it (dead after the previous kill, or stopped with SIGSTOP), so that each part is one batch
when the worker runs again. The first third (with whatever the previous kill left) is issued
and committed; during the rest's batch the test waits for the worker transaction that
has reserved receipt numbers and not committed (``Stack.batches_in_flight``) and SIGKILLs the
worker then: its whole process group, the parent alone (then its orphans), or the pool child
running that batch. PostgreSQL then says how that transaction ended (``txid_status``):
``aborted`` is a batch the kill cut in the middle. So every kill lands mid-batch, after some
receipts were committed and before all of them were.

Messages are acknowledged on receipt, so a killed batch's messages are gone: the journal
pollers of the restarted worker, the sweep and later batches must redo the work, with no lost
credit, no second receipt and no gap in the numbers.
"""

from __future__ import annotations

import random
import statistics

import pytest
from fault_invariants import check_invariants, report
from fault_stack import Beat, CallbackPump, SendReport, Stack, WebhookSender, say, wait_until

SIZES = {"short": (3, 60), "long": (20, 600)}  # kills, orders (one burst per kill)
SPARE, SPARE_TRY = 24, 8
"""Spare orders, paid 8 at a time when a batch was not caught; the rest at the end."""
MODES = ["group", "group", "parent", "child"]


@pytest.mark.faults
@pytest.mark.postgres
@pytest.mark.redis
def test_kill_worker_mid_batch(stack: Stack, variant: str) -> None:
    kills, n_orders = SIZES[variant]
    rnd = random.Random()
    seed = rnd.randrange(10**6)
    rnd.seed(seed)
    orders = stack.create_orders(n_orders + SPARE)
    bodies, refs = stack.credit_bodies(orders[:n_orders], strays=3, short_by=2)
    spare, spare_refs = stack.credit_bodies(orders[n_orders:])
    bursts = [
        bodies[k * len(bodies) // kills : (k + 1) * len(bodies) // kills] for k in range(kills)
    ]
    assert stack.worker_ready()
    sender = stack.sender(deadline=60, threads=8)
    sent: list[SendReport] = []
    kills_log: list[tuple[str, str, int, int]] = []  # mode, outcome, backlog, receipts
    retries = 0
    with Beat(stack.redis.url) as beat, CallbackPump(stack.engine):
        for burst in bursts:
            # a third: issued and committed (the counter has numbers before the kill) ...
            sent.append(_send_while_held(stack, sender, burst[: len(burst) // 3])[0])
            done = wait_until(
                lambda: _all_receipted(stack), timeout=60, interval=0.1, what="the first third"
            )
            # ... the rest: journaled while the worker is stopped, so that it is one batch when
            # the worker runs again; killed once that batch has reserved its numbers. A batch
            # not caught (it committed between two looks) is tried again with a few spare
            # webhooks, a bounded number of times.
            chunk = burst[len(burst) // 3 :]
            mode = rnd.choice(MODES)
            while True:
                report_, held = _send_while_held(stack, sender, chunk)
                sent.append(report_)
                if mode == "child":  # stopped inside the batch while finding its pool child
                    batch = stack.freeze_mid_batch(timeout=20, skip=held)
                else:  # killed the moment it is seen
                    batch = stack.wait_batch_in_flight(timeout=20, skip=held)
                if batch is not None or not spare:
                    break
                chunk, spare = spare[:SPARE_TRY], spare[SPARE_TRY:]
                retries += 1
                say(f"no batch caught; again with {len(chunk)} spare webhooks")
            if batch and mode == "child":
                stack.kill_worker(mode, victim=stack.worker_pid_of(batch))
                stack.resume_worker()
            else:
                stack.kill_worker(mode)
            outcome = stack.transaction_outcome(batch.xid) if batch else "no batch seen"
            backlog = stack.progress()  # after the kill: the aborted batch's events are back
            receipts = stack.receipts_count()
            kills_log.append((mode, outcome, backlog["events"] - backlog["processed"], receipts))
            say(
                f"kill {len(kills_log)}/{kills} {mode}: batch {outcome}, "
                f"{kills_log[-1][2]} events unprocessed after it, {receipts} receipts committed"
                + ("" if done else " (first third not settled)")
            )
        stack.ensure_worker()
        if spare:  # the spare webhooks not needed above
            sent.append(sender.send(spare))
        expected = len(bodies) + len(orders) - n_orders
        progress = stack.wait_settled(expected, timeout=120 if variant == "short" else 300)
        say(f"progress after wait: {progress}; beat sent {beat.sent}")
    counts = check_invariants(stack.engine, stack.receiver, bank_refs=refs + spare_refs)
    seen = [k for k in kills_log if k[1] != "no batch seen"]
    aborted = [n for _, outcome, n, _ in kills_log if outcome == "aborted"]
    gave_up = sum(len(r.gave_up) for r in sent)
    report(
        f"kill-worker[{variant}]",
        counts,
        f"kills={len(kills_log)} mid-batch={len(seen)} batch aborted by the kill={len(aborted)} "
        f"(by mode {_by_mode(kills_log)}) unprocessed events right after the kills "
        f"min={min(aborted, default=0)} median={statistics.median(aborted or [0]):.0f} "
        f"max={max(aborted, default=0)} worker starts={stack.worker_starts} "
        f"re-tries with spare webhooks={retries}",
        f"webhooks sent={sum(r.sent for r in sent)} acked={sum(r.acked for r in sent)} "
        f"gave-up={gave_up}",
        stack.worker_log_summary(),
        f"seed={seed}",
    )
    assert not gave_up
    assert counts.credits == len(bodies) + SPARE
    assert counts.payments == n_orders + SPARE - 2 and counts.exceptions == 5
    assert counts.lost == 0 and counts.duplicate == 0 and counts.gaps == 0
    assert not counts.violations, counts.violations
    # every kill landed mid-batch (numbers reserved, not committed); a group or child kill
    # aborts that batch (a ``parent`` kill leaves the orphans 0.3 s, in which it may commit)
    assert len(seen) == kills, kills_log
    assert all(o == "aborted" for m, o, _, _ in kills_log if m != "parent"), kills_log
    assert max(aborted, default=0) >= 2, kills_log  # batches, not single receipts
    # ... after some of the stream was issued and before all of it was
    assert all(0 < k[3] < counts.payments for k in kills_log), kills_log


def _send_while_held(
    stack: Stack, sender: WebhookSender, bodies: list[bytes]
) -> tuple[SendReport, set[int]]:
    """Sends ``bodies`` while the worker cannot take them (stopped, or dead after a kill),
    then lets it run (resumed, or started again). Also returns the batches the stop froze
    after their reservation (see ``Stack.pause_worker``)."""
    held = stack.pause_worker() if stack.worker_alive() else None
    try:
        report_ = sender.send(bodies)
    finally:
        if held is not None:
            stack.resume_worker()
        else:
            stack.ensure_worker()
    return report_, held or set()


def _all_receipted(stack: Stack) -> bool:
    p = stack.progress()
    return p["processed"] == p["events"] and p["unreceipted"] == 0


def _by_mode(kills_log: list[tuple[str, str, int, int]]) -> str:
    """``group 9/9 parent 3/5 child 6/6``: kills per mode whose batch the kill aborted."""
    modes = sorted({m for m, *_ in kills_log})
    return " ".join(
        f"{m} {sum(1 for k in kills_log if k[0] == m and k[1] == 'aborted')}/"
        f"{sum(1 for k in kills_log if k[0] == m)}"
        for m in modes
    )
