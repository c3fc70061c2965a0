"""An open-loop HTTP load generator for the benchmarks: requests at a fixed rate over
persistent connections, latency measured from each request's *scheduled* send time (so a
slow answer delays the next request on its connection without hiding that delay:
no coordinated omission, as wrk2 does it).

Request ``k`` (0, 1, ...) is due at ``t0 + k / rate`` on connection ``k % connections``;
the connections are threads spread over a few forked client processes, each speaking
raw HTTP/1.1 keep-alive on a socket with pre-encoded requests (a few tens of
microseconds of client CPU per request, so the client leaves the cores to the server).
``closed_loop`` sends back to back instead, for the most a server answers.

Answers can be checked as they arrive: ``expected[i]`` (a dict) must be a subset of the
JSON body of ``requests[i]``'s answer, else the request counts as a mismatch.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import selectors
import socket
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from benchmarks.common import percentile

MAX_EXAMPLES = 5


def http_get(path: str, *, port: int, headers: dict[str, str] | None = None) -> bytes:
    """A pre-encoded keep-alive ``GET path`` request."""
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: keep-alive"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def http_post(path: str, body: bytes, *, port: int, headers: dict[str, str] | None = None) -> bytes:
    """A pre-encoded keep-alive ``POST path`` request with a JSON body."""
    head = http_get(path, port=port, headers=headers).replace(b"GET ", b"POST ", 1)[:-2]
    return head + (
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    )


class Connection:
    """One keep-alive connection: send a request, read one Content-Length answer."""

    def __init__(self, port: int, timeout: float = 10.0):
        self.port, self.timeout = port, timeout
        self.sock: socket.socket | None = None
        self.buf = b""

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
        self.sock, self.buf = None, b""

    def _recv(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buf += chunk

    def roundtrip(self, request: bytes) -> tuple[int, bytes]:
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.sock.sendall(request)
            while (end := self.buf.find(b"\r\n\r\n")) < 0:
                self._recv()
            head = self.buf[:end].lower()
            status = int(head[9:12])
            at = head.find(b"\r\ncontent-length:")
            if at < 0:
                raise ConnectionError(f"no Content-Length in {head[:200]!r}")
            stop = head.find(b"\r\n", at + 2)
            length = int(head[at + 17 : stop if stop >= 0 else None])
            total = end + 4 + length
            while len(self.buf) < total:
                self._recv()
            body, self.buf = self.buf[end + 4 : total], self.buf[total:]
            if b"\r\nconnection: close" in head:
                self.close()
            return status, body
        except (OSError, ValueError):
            self.close()
            raise


@dataclass
class Samples:
    """What one run measured; times are seconds on the shared monotonic clock."""

    t0: float
    rate: float  # offered rate (0: closed loop)
    scheduled: array = field(default_factory=lambda: array("d"))  # offset from t0
    latency_ms: array = field(default_factory=lambda: array("d"))  # from scheduled time
    send_lag_ms: array = field(default_factory=lambda: array("d"))  # sent - scheduled
    status: array = field(default_factory=lambda: array("h"))  # 0: connection error
    mismatch: array = field(default_factory=lambda: array("b"))
    examples: list = field(default_factory=list)
    client_cpu_seconds: float = 0.0
    events: dict = field(default_factory=dict)  # name -> offset from t0 (parent actions)

    def extend(self, other: Samples) -> None:
        for name in ("scheduled", "latency_ms", "send_lag_ms", "status", "mismatch"):
            getattr(self, name).extend(getattr(other, name))
        self.examples += other.examples[: max(0, MAX_EXAMPLES - len(self.examples))]
        self.client_cpu_seconds += other.client_cpu_seconds

    def summary(self, start: float = 0.0, end: float = float("inf")) -> dict:
        """Figures of the requests scheduled in [start, end) (offsets from t0)."""
        idx = [i for i, s in enumerate(self.scheduled) if start <= s < end]
        ok = [self.latency_ms[i] for i in idx if self.status[i] == 200]
        done = [self.scheduled[i] + self.latency_ms[i] / 1000 for i in idx]
        first = min((self.scheduled[i] for i in idx), default=0.0)
        span = (max(done) - first) if done else 0.0
        lags = [self.send_lag_ms[i] for i in idx]
        return {
            "requests": len(idx),
            "ok": len(ok),
            "errors": len(idx) - len(ok),
            "mismatches": sum(self.mismatch[i] for i in idx),
            "p50_ms": percentile(ok, 50) if ok else None,
            "p99_ms": percentile(ok, 99) if ok else None,
            "p999_ms": percentile(ok, 99.9) if ok else None,
            "max_ms": max(ok) if ok else None,
            "throughput": len(ok) / span if span > 0 else 0.0,
            "send_lag_p99_ms": percentile(lags, 99) if lags else None,
        }


def _matches(body: bytes, expected: dict) -> bool:
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return isinstance(data, dict) and all(data.get(k) == v for k, v in expected.items())


class _Slot:
    """One connection of a client process and the request it is waiting for."""

    def __init__(self, port: int, first: int):
        self.conn = Connection(port)
        self.k = first  # the next request this connection sends (or is waiting for)
        self.n = 0  # requests done
        self.due = 0.0
        self.sent = 0.0
        self.busy = False


class _Loop:
    """A client process's event loop: its connections on one epoll, requests sent when
    due, answers parsed as they arrive. One thread: no GIL hand-offs between sockets."""

    def __init__(self, out: Samples, plan, conn_ids, step: int):
        self.requests, self.expected, self.rate, self.seconds, self.n_total, port = plan
        self.out, self.step = out, step
        self.slots = [_Slot(port, c) for c in conn_ids]
        self.counts = [len(range(c, self.n_total, step)) for c in conn_ids]
        self.selector = selectors.DefaultSelector()

    def _due(self, slot: _Slot) -> float:
        if self.rate:
            return self.out.t0 + slot.k / self.rate
        return time.monotonic()

    def _send(self, slot: _Slot, now: float) -> None:
        conn = slot.conn
        try:
            if conn.sock is None:
                conn.sock = socket.create_connection(("127.0.0.1", conn.port), conn.timeout)
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.sock.setblocking(False)
                self.selector.register(conn.sock, selectors.EVENT_READ, slot)
            conn.sock.send(self.requests[slot.k % len(self.requests)])
        except OSError as exc:
            self._done(slot, 0, repr(exc).encode(), now)
            return
        slot.sent, slot.busy = now, True

    def _close(self, slot: _Slot) -> None:
        if slot.conn.sock is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self.selector.unregister(slot.conn.sock)
        slot.conn.close()

    def _readable(self, slot: _Slot, now: float) -> None:
        conn = slot.conn
        try:
            chunk = conn.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            conn.buf += chunk
            parsed = _parse(conn.buf)
        except (OSError, ValueError) as exc:
            self._close(slot)
            if slot.busy:  # an idle connection closed by the server is no request's error
                self._done(slot, 0, repr(exc).encode(), now)
            return
        if parsed is None or not slot.busy:
            return
        status, body, rest, close = parsed
        conn.buf = rest
        if close:
            self._close(slot)
        self._done(slot, status, body, now)

    def _done(self, slot: _Slot, status: int, body: bytes, now: float) -> None:
        out, i = self.out, slot.k % len(self.requests)
        expected = self.expected[i]
        wrong = status == 200 and expected is not None and not _matches(body, expected)
        if (wrong or status != 200) and len(out.examples) < MAX_EXAMPLES:
            out.examples.append(
                {
                    "request": i,
                    "status": status,
                    "body": body[:300].decode(errors="replace"),
                    "expected": expected,
                    "at": round(slot.due - out.t0, 3),
                }
            )
        out.scheduled.append(slot.due - out.t0)
        out.latency_ms.append((now - slot.due) * 1000)
        out.send_lag_ms.append((max(slot.sent, slot.due) - slot.due) * 1000)
        out.status.append(status)
        out.mismatch.append(1 if wrong else 0)
        slot.k, slot.n, slot.busy = slot.k + self.step, slot.n + 1, False

    def _finished(self, index: int, slot: _Slot, now: float) -> bool:
        if self.rate:
            return slot.n >= self.counts[index]
        return now >= self.out.t0 + self.seconds

    def run(self) -> None:
        active = set(range(len(self.slots)))
        for slot in self.slots:
            slot.due = self._due(slot)
        while active:
            now = time.monotonic()
            next_due = None
            for index in list(active):
                slot = self.slots[index]
                if slot.busy:
                    continue
                if self._finished(index, slot, now):
                    active.discard(index)
                    continue
                if slot.due <= now:
                    self._send(slot, now)
                    if not slot.busy:  # failed to send: counted, move on
                        slot.due = self._due(slot)
                    continue
                next_due = slot.due if next_due is None else min(next_due, slot.due)
            if not active:
                break
            timeout = None if next_due is None else max(0.0, next_due - time.monotonic())
            if timeout is None and not any(s.busy for s in self.slots):
                timeout = 0.0
            for key, _ in self.selector.select(timeout if timeout is not None else 1.0):
                slot = key.data
                self._readable(slot, time.monotonic())
                if not slot.busy:
                    slot.due = self._due(slot)
            now = time.monotonic()
            for slot in self.slots:  # a request taking > 10 s is an error
                if slot.busy and now - slot.sent > slot.conn.timeout:
                    self._close(slot)
                    self._done(slot, 0, b"timeout", now)
                    slot.due = self._due(slot)
        for slot in self.slots:
            self._close(slot)


def _parse(buf: bytes) -> tuple[int, bytes, bytes, bool] | None:
    """(status, body, what follows, close?) of one complete answer in buf, else None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].lower()
    status = int(head[9:12])
    at = head.find(b"\r\ncontent-length:")
    if at < 0:
        raise ValueError(f"no Content-Length in {head[:200]!r}")
    stop = head.find(b"\r\n", at + 2)
    total = end + 4 + int(head[at + 17 : stop if stop >= 0 else None])
    if len(buf) < total:
        return None
    return status, buf[end + 4 : total], buf[total:], b"\r\nconnection: close" in head


def _client_process(conn_ids, total_conns, plan, t0_value, go, results) -> None:
    go.wait()  # forked: the parent sets t0 before go
    out = Samples(t0=t0_value.value, rate=plan[2])
    cpu = os.times()
    _Loop(out, plan, conn_ids, total_conns).run()
    after = os.times()
    out.client_cpu_seconds = (after.user - cpu.user) + (after.system - cpu.system)
    results.put(out)


def run(
    *,
    port: int,
    requests: Sequence[bytes],
    expected: Sequence[dict | None] | None = None,
    rate: float,
    seconds: float,
    connections: int = 32,
    processes: int = 2,
    actions: Sequence[tuple[float, str, Callable[[], None]]] = (),
) -> Samples:
    """``rate`` requests a second (0: closed loop, back to back) for ``seconds``;
    ``actions`` are (offset, name, callable) run by this process at t0 + offset (their
    actual offsets are in ``Samples.events``). Nothing Django-side may be open: forks."""
    expected = list(expected) if expected is not None else [None] * len(requests)
    n_total = round(rate * seconds) if rate else 0
    ctx = multiprocessing.get_context("fork")
    t0_value, go, results = ctx.Value("d", 0.0), ctx.Event(), ctx.Queue()
    plan = (list(requests), expected, rate, seconds, n_total, port)
    procs = [
        ctx.Process(
            target=_client_process,
            args=(range(p, connections, processes), connections, plan, t0_value, go, results),
            daemon=True,
        )
        for p in range(processes)
    ]
    for proc in procs:
        proc.start()
    time.sleep(0.2)  # let the forks settle before the clock starts
    t0 = time.monotonic() + 0.1
    t0_value.value = t0
    go.set()
    events = {}
    for offset, name, action in sorted(actions, key=lambda a: a[0]):
        if (delay := t0 + offset - time.monotonic()) > 0:
            time.sleep(delay)
        action()
        events[name] = time.monotonic() - t0
    merged = Samples(t0=t0, rate=rate, events=events)
    for _ in procs:
        merged.extend(results.get(timeout=seconds + 120))
    for proc in procs:
        proc.join(timeout=10)
    return merged
