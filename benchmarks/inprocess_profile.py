"""Requests through Django's WSGI handler in this process (the whole middleware stack, no
gunicorn, no sockets): CPU per request, and where it goes under cProfile. Deterministic
where a sampling profile of a loaded server is not: it shows the application's own cost
of a request, apart from the server's and the machine's."""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from urllib.parse import urlsplit


def _environ(raw_request: bytes) -> dict:
    """A WSGI environ from a pre-encoded ``GET`` request (benchmarks.open_loop.http_get)."""
    head = raw_request.decode().split("\r\n")
    target = head[0].split(" ")[1]
    parts = urlsplit(target)
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": parts.path,
        "QUERY_STRING": parts.query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
    }
    for line in head[1:]:
        if ": " in line:
            name, value = line.split(": ", 1)
            environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def _serve(handler, environs: list[dict], n: int) -> None:
    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    for i in range(n):
        environ = dict(environs[i % len(environs)], **{"wsgi.input": io.BytesIO(b"")})
        b"".join(handler(environ, start_response))
    bad = [s for s in statuses if not s.startswith("200")]
    if bad:
        raise AssertionError(f"in-process requests answered {bad[:3]}")


def cpu_per_request(requests: list[bytes], n: int = 2000) -> float:
    """Microseconds of this process's CPU per request, after a warm-up."""
    from django.core.handlers.wsgi import WSGIHandler

    handler, environs = WSGIHandler(), [_environ(r) for r in requests]
    _serve(handler, environs, min(n, 200))
    started = time.process_time()
    _serve(handler, environs, n)
    return (time.process_time() - started) / n * 1e6


def profile(requests: list[bytes], n: int = 2000, top: int = 30) -> dict:
    """The functions with the most cumulative and own CPU per request under cProfile."""
    from django.core.handlers.wsgi import WSGIHandler

    handler, environs = WSGIHandler(), [_environ(r) for r in requests]
    _serve(handler, environs, min(n, 200))
    # CPU time, not wall time: on a loaded machine a syscall that wakes Redis or
    # PostgreSQL waits for a core, and that wait is the machine's, not the code's.
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    _serve(handler, environs, n)
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows = []
    for (filename, line, name), (_, calls, own, cumulative, _) in stats.stats.items():
        short = filename.split("site-packages/")[-1].replace("/work/main/", "")
        rows.append(
            {
                "function": f"{name} ({short}:{line})",
                "calls_per_request": round(calls / n, 2),
                "cumulative_us": round(cumulative / n * 1e6, 1),
                "own_us": round(own / n * 1e6, 1),
            }
        )
    return {
        "cumulative": sorted(rows, key=lambda r: -r["cumulative_us"])[:top],
        "own": sorted(rows, key=lambda r: -r["own_us"])[: top // 2],
    }


def queries(request: bytes) -> int:
    """SQL queries one request makes (after a warm-up request)."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    handler, environ = WSGIHandler(), _environ(request)
    _serve(handler, [environ], 1)
    with CaptureQueriesContext(connection) as captured:
        _serve(handler, [environ], 1)
    return len(captured.captured_queries)
