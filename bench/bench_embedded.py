"""The embedded default under a catch-up (issue 16): one ``motcua serve`` (SQLite, its own
worker), N SePay notifications sent as fast as the webhook accepts them, until N receipts.

What a small agency sees after a day offline. Baseline in the same run: raw RSA-2048
signatures per second on one core with the agency's key (the goal is ≥ 0.10 of it).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from bench import loadgen
from bench.common import Table, ms

ROOT = Path(__file__).resolve().parents[1]
MOTCUA = str(Path(sys.executable).with_name("motcua"))


def run(table: Table, n: int = 1000) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from infra.ports import free_port, wait_for_port

    from api.demo import DEMO_API_KEY, DEMO_SEPAY_KEY

    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOTCUA_")}
        port = free_port()
        env.update(
            {
                "MOTCUA_DATA_DIR": str(Path(tmp) / "data"),
                "MOTCUA_TASK_EAGER": "false",
                "MOTCUA_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            }
        )
        subprocess.run([MOTCUA, "demo"], env=env, check=True, capture_output=True, timeout=180)
        raw = _raw_rsa(env)
        log = (Path(tmp) / "serve.log").open("wb")
        accept_only = os.environ.get("BENCH_ACCEPT_ONLY") == "1"  # diagnostic: no worker
        proc = subprocess.Popen(
            [MOTCUA, "serve", "--port", str(port), *(["--no-worker"] if accept_only else [])],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for_port(port, timeout=60)
            base = f"http://127.0.0.1:{port}"
            auth = {"Authorization": f"Bearer {DEMO_API_KEY}"}
            with httpx.Client(base_url=base, timeout=30) as http:
                print(f"  creating {n} orders ...", flush=True)
                orders = [
                    http.post(
                        "/api/v1/payment-orders",
                        headers={**auth, "Idempotency-Key": f"emb-{i}"},
                        json={
                            "dossier_code": f"EMB-{i}",
                            "procedure_code": "1.001612",
                            "payer": {"name": "Trần Thị Bình"},
                            "fees": [{"fee_code": "CT-BS", "quantity": 3}],
                        },
                    ).json()
                    for i in range(n + LONE)
                ]
            account = _account(env)
            bodies = [
                json.dumps(
                    {
                        "id": 500_000 + i,
                        "gateway": "VietinBank",
                        "transactionDate": time.strftime("%Y-%m-%d %H:%M:%S"),
                        "accountNumber": account,
                        "content": f"CK {order['reference']}",
                        "transferType": "in",
                        "transferAmount": order["amount"],
                        "referenceCode": f"FT-EMB-{i}",
                    }
                ).encode()
                for i, order in enumerate(orders)
            ]
            headers = {"Authorization": f"Apikey {DEMO_SEPAY_KEY}"}
            db = Path(tmp) / "data" / "motcua.sqlite3"
            if not accept_only:
                lone = _lone(base, bodies[n:], headers, db)
            bodies = bodies[:n]
            print(f"  sending {n} notifications ...", flush=True)
            cpu0 = _cpu(proc.pid)
            start = time.perf_counter()
            codes = loadgen.closed_loop(
                f"{base}/api/v1/bank-feeds/sepay",
                bodies,
                headers={**headers, "Content-Type": "application/json"},
                connections=SENDERS,
            )
            sent_s = time.perf_counter() - start
            if accept_only:
                print(f"  accepted {n} in {sent_s:.2f} s: {n / sent_s:.0f}/s (no worker)")
                return
            issued = _wait_for_receipts(db, LONE + n, deadline_s=600) - LONE
            elapsed = time.perf_counter() - start
            cpu1 = _cpu(proc.pid)
            print(
                "  CPU while sending and issuing (share of one core; the machine has 2): "
                + ", ".join(
                    f"{name} {(cpu1[name] - cpu0.get(name, 0.0)) / elapsed:.0%}" for name in cpu1
                ),
                flush=True,
            )
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    per_s = issued / elapsed
    bad = sum(1 for c in codes if c != 200)
    table.add(
        f"embedded default (one motcua serve, SQLite, its own worker): {n:,} SePay notifications "
        f"sent as fast as accepted ({sent_s:.1f} s, non-200 {bad}) → {issued:,} receipts in "
        f"{elapsed:.1f} s",
        f"{per_s:,.0f} receipts/s",
        f"{raw:,.0f}/s raw RSA-2048, one core",
        f"{per_s / raw:.3f}",
        "≥ 0.10",
    )
    took, answered = zip(*lone, strict=True)
    table.add(
        f"embedded default: a lone SePay notification → its receipt ({LONE} notifications "
        f"{LONE_GAP_S[0]:g}–{LONE_GAP_S[1]:g} s apart, nothing else running; the citizen "
        "at the counter waits on this) vs the webhook's own answer",
        f"p50 {_ms(_median(took))}, max {_ms(max(took))}",
        f"p50 {_ms(_median(answered))}, max {_ms(max(answered))}",
        f"{_median(took) / _median(answered):.0f}x",
        "",
    )


SENDERS = 4
LONE = 20
"""Lone notifications sent before the burst, one at a time, each waited for to its receipt."""
LONE_GAP_S = (0.5, 1.5)
"""Pause between lone notifications, drawn (seeded) from this range: longer than the waker's
window, so each is alone, and random, so arrivals do not lock onto the broker's poll phase."""


def _lone(
    base: str, bodies: list[bytes], headers: dict[str, str], db: Path
) -> list[tuple[float, float]]:
    """(webhook sent → receipt stored, webhook sent → answered) per lone notification, in
    seconds; the receipts are counted from the SQLite file every 2 ms (bounded: 30 s each)."""
    out = []
    gaps = random.Random(16)
    with httpx.Client(base_url=base, timeout=30) as http:
        for i, body in enumerate(bodies):
            time.sleep(gaps.uniform(*LONE_GAP_S))
            start = time.perf_counter()
            answer = http.post(
                "/api/v1/bank-feeds/sepay",
                content=body,
                headers={**headers, "Content-Type": "application/json"},
            )
            answered = time.perf_counter() - start
            answer.raise_for_status()
            deadline = time.monotonic() + 30
            while _receipts(db) < i + 1 and time.monotonic() < deadline:
                time.sleep(0.002)
            out.append((time.perf_counter() - start, answered))
    print(
        "  lone notifications → receipt: " + ", ".join(_ms(took) for took, _ in out),
        flush=True,
    )
    return out


def _receipts(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        return int(conn.execute("SELECT count(*) FROM receipts").fetchone()[0])


def _median(seconds: Sequence[float]) -> float:
    return loadgen.percentile(seconds, 50)


def _ms(seconds: float) -> str:
    return ms(seconds * 1000)


"""Connections the sender keeps busy (each sends its next notification when answered)."""


def _cpu(serve_pid: int) -> dict[str, float]:
    """CPU seconds so far of ``motcua serve`` and of each process it started (the worker)."""
    found = {"serve": loadgen.cpu_seconds(serve_pid)}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == serve_pid:
            name = (
                "worker" if "worker" in cmdline else "sandbox" if "sandbox" in cmdline else "child"
            )
            found[name] = found.get(name, 0.0) + loadgen.cpu_seconds(int(entry.name))
    return found


def _raw_rsa(env: dict[str, str]) -> float:
    code = (
        "import api.composition\n"
        "from cryptography.hazmat.primitives import hashes\n"
        "from cryptography.hazmat.primitives.asymmetric import padding\n"
        "from payments.models import Agency\n"
        "from settings.db import session_scope\n"
        "from signing.keys import load_key_source\n"
        "from bench.common import rate\n"
        "with session_scope() as s:\n"
        "    ref = s.query(Agency).first().signing_key_ref\n"
        "k = load_key_source(ref).private_key\n"
        "print(rate(lambda: k.sign(b'x' * 1300, padding.PKCS1v15(), hashes.SHA256())))\n"
    )
    return float(_last_line(env, code))


def _account(env: dict[str, str]) -> str:
    code = (
        "import api.composition\n"
        "from payments.models import Agency\n"
        "from settings.db import session_scope\n"
        "with session_scope() as s:\n"
        "    print(s.query(Agency).first().bank_account)\n"
    )
    return _last_line(env, code)


def _last_line(env: dict[str, str], code: str) -> str:
    """Runs ``code`` in a fresh interpreter with the server's settings; its last output line."""
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    return out.stdout.strip().splitlines()[-1]


def _wait_for_receipts(db: Path, n: int, deadline_s: float) -> int:
    """Counts receipts straight from the SQLite file (read-only, WAL lets it read beside the
    writers) every 50 ms until ``n`` exist, bounded by ``deadline_s``; asking the API per order
    would load the very server being measured."""
    deadline = time.monotonic() + deadline_s
    count = 0
    while time.monotonic() < deadline:
        count = _receipts(db)
        if count >= n:
            break
        time.sleep(0.05)
    return count


if __name__ == "__main__":
    t = Table()
    run(t, n=int(os.environ.get("BENCH_N", "1000")))
    print(t.markdown())
