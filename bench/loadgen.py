"""Load generation for the HTTP benchmarks: processes, wrk, an open-loop sender, a no-op Celery app.

Everything here talks to 127.0.0.1 only, and every load is bounded in count and in time.

- :func:`spawn` / :func:`stop` start a child in its own process group and end that group (only
  processes we started, by their id).
- :func:`uvicorn` serves an ASGI app like production would (1 worker, uvloop, httptools,
  access log off, log level warning) and waits until it answers.
- :func:`wrk` runs Debian's ``wrk`` with ``bench/lua/post_json.lua`` and parses requests/s, the
  latency distribution (``--latency``) and the exact non-2xx count the script prints.
- :func:`open_loop` sends requests at a fixed *offered* rate with asyncio (a minimal keep-alive
  HTTP/1.1 client, see :class:`_Http` for why not httpx): each request has its own scheduled
  send time, so a slow server does not lower the rate (no coordinated omission); it records
  when each request was actually sent.
- ``noop_app`` is a Celery app with one no-op task on a dedicated queue, for the Celery round-trip
  baseline; its worker is started with ``celery -A bench.loadgen:noop_app worker``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from celery import Celery

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
LUA_POST = Path(__file__).with_name("lua") / "post_json.lua"
LOOPBACK = "127.0.0.1"


# ---------------------------------------------------------------- processes


def spawn(argv: Sequence[str], *, env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Starts ``argv`` in its own session (process group), output to ``log``."""
    with log.open("ab") as fh:
        return subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen[bytes] | None, *, timeout: float = 20.0) -> None:
    """SIGTERM the child's process group, SIGKILL it after ``timeout``; no-op if gone."""
    if proc is None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    # children left in the group after the leader exited (e.g. prefork pool processes)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    """Until GET ``url`` answers 200 (at most ``timeout`` s); raises with the log tail if not."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as res:
                if res.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} not answering after {timeout:.0f} s:\n{log_tail(log)}")
        time.sleep(0.1)


@contextlib.contextmanager
def uvicorn(
    app: str,
    *,
    port: int,
    env: Mapping[str, str],
    log: Path,
    factory: bool = False,
    health: str = "/healthz",
) -> Iterator[subprocess.Popen[bytes]]:
    """``uvicorn <app>`` on 127.0.0.1:<port>, 1 worker, uvloop + httptools, no access log."""
    argv = [
        PYTHON, "-m", "uvicorn", app,
        "--host", LOOPBACK, "--port", str(port),
        "--workers", "1", "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    if factory:
        argv.append("--factory")
    proc = spawn(argv, env=env, log=log)
    try:
        wait_http(f"http://{LOOPBACK}:{port}{health}", proc, log)
        yield proc
    finally:
        stop(proc)


# ---------------------------------------------------------------- CPU accounting (/proc)

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # fields from 3 (state) on


def cpu_seconds(pid: int, *, with_children: bool = False) -> float:
    """User + system CPU of ``pid`` (all its threads); ``with_children`` adds its live child
    processes and the ones it already reaped (e.g. PostgreSQL's postmaster and its backends)."""
    fields = _stat(pid)
    if fields is None:
        return 0.0
    total = int(fields[11]) + int(fields[12])  # utime, stime
    if with_children:
        total += int(fields[13]) + int(fields[14])  # cutime, cstime: reaped children
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                child = _stat(int(entry.name))
                if child is not None and int(child[1]) == pid:
                    total += int(child[11]) + int(child[12])
    return total / _TICK


def postmaster_pid(data_dir: Path) -> int:
    """PostgreSQL's main process id, from ``postmaster.pid`` in its data directory."""
    return int((data_dir / "postmaster.pid").read_text().split()[0])


# ---------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    non2xx: int  # counted by the Lua script: every status outside 200-299
    wrk_non2xx: int  # wrk's own "Non-2xx or 3xx responses" line (status > 399), 0 when absent
    socket_errors: str
    first_error: str
    output: str


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if m is None:
        raise ValueError(f"unparsable wrk duration {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> WrkResult:
    def find(pattern: str) -> re.Match[str]:
        m = re.search(pattern, out, re.MULTILINE)
        if m is None:
            raise RuntimeError(f"wrk output lacks {pattern!r}:\n{out}")
        return m

    total = find(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m)")
    non2xx = re.search(r"^BENCH non2xx=(\d+)", out, re.MULTILINE)
    first = re.search(r"^BENCH first_error=(.*)$", out, re.MULTILINE)
    sock = re.search(r"Socket errors: (.*)$", out, re.MULTILINE)
    own = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return WrkResult(
        requests=int(total.group(1)),
        seconds=_ms(total.group(2) + total.group(3)) / 1000,
        rps=float(find(r"^Requests/sec:\s+([\d.]+)").group(1)),
        p50_ms=_ms(find(r"^\s+50%\s+(\S+)").group(1)),
        p99_ms=_ms(find(r"^\s+99%\s+(\S+)").group(1)),
        non2xx=int(non2xx.group(1)) if non2xx else -1,
        wrk_non2xx=int(own.group(1)) if own else 0,
        socket_errors=sock.group(1) if sock else "none",
        first_error=first.group(1) if first else "",
        output=out,
    )


def wrk(
    url: str,
    *,
    body: str,
    idem_prefix: str,
    auth: str = "",
    threads: int = 2,
    connections: int = 10,
    seconds: int = 10,
) -> WrkResult:
    """``wrk -t<threads> -c<connections> -d<seconds>s --latency`` POSTing ``body`` to ``url``."""
    if not url.startswith(f"http://{LOOPBACK}:"):
        raise ValueError("load is only ever sent to 127.0.0.1")
    path = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else "/"
    env = {
        **os.environ,
        "BENCH_PATH": path,
        "BENCH_BODY": body,
        "BENCH_AUTH": auth,
        "BENCH_IDEM_PREFIX": idem_prefix,
    }
    argv = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
        "--latency", "-s", str(LUA_POST), url,
    ]  # fmt: skip
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=seconds + 30, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return parse_wrk(done.stdout)


# ---------------------------------------------------------------- open-loop sender


@dataclass
class OpenLoopResult:
    sent_at: dict[int, float]  # index → wall-clock time (time.time()) the request was sent
    status: dict[int, int] = field(default_factory=dict)  # index → HTTP status (0: error)
    response_ms: dict[int, float] = field(default_factory=dict)
    lag_ms: list[float] = field(default_factory=list)  # task start − scheduled send time
    scheduled_at: dict[int, float] = field(default_factory=dict)  # index → wall-clock schedule
    first_send: float = 0.0
    last_send: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def achieved_rate(self) -> float:
        span = self.last_send - self.first_send
        return (len(self.sent_at) - 1) / span if span > 0 else 0.0

    @property
    def non2xx(self) -> int:
        return sum(1 for s in self.status.values() if not 200 <= s <= 299)


class _Http:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams, for the open-loop sender.

    httpx was tried first: once the server stalled and hundreds of requests were in flight, its
    connection pool (work proportional to the queue on every state change) pinned the sender at
    full CPU and it stopped sending, so the offered rate collapsed. Here taking and returning a
    connection is O(1) (a LIFO stack of idle connections), so the sender keeps its schedule
    whatever the server does. Enough for our servers: requests carry a Content-Length body,
    responses a Content-Length (uvicorn always sends one for these endpoints).
    """

    IDLE_S = 3.0  # uvicorn closes idle keep-alive connections after 5 s

    def __init__(self, host: str, port: int, max_connections: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.slots = asyncio.Semaphore(max_connections)

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        now = time.monotonic()
        while self.idle:
            reader, writer, last = self.idle.pop()
            if now - last < self.IDLE_S and not reader.at_eof():
                return reader, writer, True
            writer.close()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return reader, writer, False

    async def post(self, request: bytes, on_send: Callable[[], None]) -> tuple[int, bytes]:
        """Sends ``request`` (calling ``on_send`` just before), returns (status, body)."""
        async with self.slots:
            for attempt in (1, 2):
                reader, writer, reused = await self._connection()
                try:
                    on_send()
                    writer.write(request)
                    status_line = await reader.readline()
                    if not status_line:
                        raise ConnectionResetError("connection closed before the response")
                    status = int(status_line.split(b" ", 2)[1])
                    length, keep = 0, True
                    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                        name, _, value = line.partition(b":")
                        name = name.strip().lower()
                        if name == b"content-length":
                            length = int(value)
                        elif name == b"connection" and b"close" in value.lower():
                            keep = False
                    body = await reader.readexactly(length) if length else b""
                except (ConnectionError, asyncio.IncompleteReadError):
                    writer.close()
                    if attempt == 1 and reused:
                        continue  # the server had closed the idle connection: send again
                    raise
                except BaseException:
                    writer.close()
                    raise
                if keep:
                    self.idle.append((reader, writer, time.monotonic()))
                else:
                    writer.close()
                return status, body
        raise AssertionError("unreachable")

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()
        self.idle.clear()


async def _open_loop(
    url: str,
    bodies: Sequence[bytes],
    headers: Mapping[str, str],
    rate: float,
    drain_s: float,
) -> OpenLoopResult:
    parts = urlsplit(url)
    host, port = parts.hostname or LOOPBACK, parts.port or 80
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    result = OpenLoopResult(sent_at={})
    client = _Http(host, port, max_connections=2000)
    loop = asyncio.get_running_loop()

    async def send(i: int) -> None:
        request = (
            f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n{head}"
            f"Content-Length: {len(bodies[i])}\r\n\r\n"
        ).encode() + bodies[i]
        t0 = 0.0

        def on_send() -> None:
            nonlocal t0
            result.sent_at[i] = time.time()
            t0 = time.perf_counter()

        try:
            status, body = await asyncio.wait_for(client.post(request, on_send), 30.0)
            result.status[i] = status
            if not 200 <= status <= 299 and len(result.errors) < 5:
                result.errors.append(f"{status} {body[:200]!r}")
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
            result.status[i] = 0
            if len(result.errors) < 5:
                result.errors.append(repr(exc))
        if t0:
            result.response_ms[i] = (time.perf_counter() - t0) * 1000

    tasks = []
    try:
        start = loop.time() + 0.05
        wall_start = time.time() + (start - loop.time())
        for i in range(len(bodies)):
            due = start + i / rate
            result.scheduled_at[i] = wall_start + i / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            result.lag_ms.append((loop.time() - due) * 1000)
            tasks.append(asyncio.create_task(send(i)))
        _, pending = await asyncio.wait(tasks, timeout=drain_s)
        if pending:
            result.errors.append(f"{len(pending)} requests unanswered after {drain_s:.0f} s")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        client.close()
    if result.sent_at:
        result.first_send = min(result.sent_at.values())
        result.last_send = max(result.sent_at.values())
    return result


def open_loop(
    url: str,
    bodies: Sequence[bytes],
    *,
    headers: Mapping[str, str],
    rate: float,
    drain_s: float = 30.0,
) -> OpenLoopResult:
    """POSTs ``bodies[i]`` at ``start + i / rate``, whatever the server's speed; bounded by
    ``len(bodies) / rate + drain_s`` seconds."""
    if not url.startswith(f"http://{LOOPBACK}:"):
        raise ValueError("load is only ever sent to 127.0.0.1")
    return asyncio.run(_open_loop(url, bodies, headers, rate, drain_s))


async def _closed_loop(
    url: str, bodies: Sequence[bytes], headers: Mapping[str, str], connections: int
) -> list[int]:
    parts = urlsplit(url)
    host, port = parts.hostname or LOOPBACK, parts.port or 80
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    client = _Http(host, port, max_connections=connections)
    statuses = [0] * len(bodies)
    queue = iter(range(len(bodies)))

    async def sender() -> None:
        for i in queue:  # the iterator is shared: each body is sent once, by whoever is free
            request = (
                f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n{head}"
                f"Content-Length: {len(bodies[i])}\r\n\r\n"
            ).encode() + bodies[i]
            try:
                statuses[i], _ = await asyncio.wait_for(client.post(request, lambda: None), 30.0)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
                statuses[i] = 0

    try:
        await asyncio.gather(*(sender() for _ in range(connections)))
    finally:
        client.close()
    return statuses


def closed_loop(
    url: str, bodies: Sequence[bytes], *, headers: Mapping[str, str], connections: int = 4
) -> list[int]:
    """POSTs every body as fast as the server answers, ``connections`` at a time (each sends
    its next one when the previous is answered); returns the status of each (0: no answer).
    The light client of :class:`_Http`, so the sender takes little of the machine's CPU."""
    if not url.startswith(f"http://{LOOPBACK}:"):
        raise ValueError("load is only ever sent to 127.0.0.1")
    return asyncio.run(_closed_loop(url, bodies, headers, connections))


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


# ---------------------------------------------------------------- Celery round-trip baseline

NOOP_QUEUE = "bench-noop"
NOOP_RESULTS = "bench:noop:done"

noop_app = Celery("bench_noop", broker=os.environ.get("BENCH_BROKER_URL", "memory://"))
# the same delivery settings as settings/worker.py, on a queue of its own
noop_app.conf.update(
    task_ignore_result=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    broker_connection_timeout=2,
    task_publish_retry=False,
    task_default_queue=NOOP_QUEUE,
    broker_transport_options={"visibility_timeout": 3600, "socket_timeout": 5},
    worker_hijack_root_logger=False,
)
_clients: dict[str, Any] = {}


@noop_app.task(name="bench.noop")  # type: ignore[untyped-decorator]
def noop(index: int) -> None:
    """Does nothing but note when it ran (the timestamp is taken first)."""
    ran = time.time()
    client = _clients.get("redis")
    if client is None:
        import redis

        client = _clients["redis"] = redis.Redis.from_url(noop_app.conf.broker_url)
    client.rpush(NOOP_RESULTS, f"{index} {ran:.6f}")


def celery_round_trip(
    broker_url: str, *, count: int, rate: float, log: Path, out: TextIO = sys.stdout
) -> list[float]:
    """Round trip ``apply_async`` → task body runs, in ms, for ``count`` no-op tasks sent
    open-loop at ``rate``/s to a ``--concurrency 2`` prefork worker on the same broker."""
    import redis

    client = redis.Redis.from_url(broker_url)
    client.delete(NOOP_RESULTS)
    env = {**os.environ, "BENCH_BROKER_URL": broker_url}
    argv = [
        PYTHON, "-m", "celery", "-A", "bench.loadgen:noop_app", "worker",
        "--concurrency=2", "--loglevel=WARNING", "-Q", NOOP_QUEUE,
        "-n", f"bench-noop-{os.getpid()}@%h", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    worker = spawn(argv, env=env, log=log)
    try:
        noop_app.conf.broker_url = broker_url
        # warm up: the worker is ready once a task comes back
        noop.apply_async(args=(-1,), retry=False)
        deadline = time.monotonic() + 30
        while client.llen(NOOP_RESULTS) < 1:
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"no-op worker not ready:\n{log_tail(log)}")
            time.sleep(0.05)
        for i in range(-21, -1):
            noop.apply_async(args=(i,), retry=False)
        time.sleep(0.5)
        client.delete(NOOP_RESULTS)
        print(f"    {count} no-op tasks at {rate:.0f}/s ...", file=out, flush=True)
        sent: dict[int, float] = {}
        start = time.monotonic() + 0.05
        for i in range(count):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sent[i] = time.time()
            noop.apply_async(args=(i,), retry=False)
        deadline = time.monotonic() + 30
        while client.llen(NOOP_RESULTS) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        done: list[float] = []
        for raw in client.lrange(NOOP_RESULTS, 0, -1):
            index, ran = raw.decode().split()
            if int(index) in sent:
                done.append((float(ran) - sent[int(index)]) * 1000)
        if len(done) < count:
            print(f"    only {len(done)}/{count} no-op tasks ran", file=out, flush=True)
        return done
    finally:
        stop(worker)
        client.close()
