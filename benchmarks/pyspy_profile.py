"""Where a gunicorn server's time goes under load: ``py-spy record`` (sampling, from
outside the process, so the server runs as measured) on the master and its workers,
summarized as the functions most often on the stack (inclusive) and at its top (self).

py-spy is not a project dependency: ``$PY_SPY`` or ``py-spy`` on the PATH (for example
``python -m venv /tmp/pyspy && /tmp/pyspy/bin/pip install py-spy; export
PY_SPY=/tmp/pyspy/bin/py-spy``). Without it :func:`recording` records nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

_LINE = re.compile(r":\d+\)$")


def executable() -> str | None:
    return os.environ.get("PY_SPY") or shutil.which("py-spy")


@contextlib.contextmanager
def recording(pid: int, output: Path, *, rate: int = 250):
    """py-spy samples ``pid`` and its subprocesses inside the block (collapsed stacks to
    ``output``); yields False when py-spy is not installed."""
    spy = executable()
    if spy is None:
        yield False
        return
    proc = subprocess.Popen(
        [
            spy,
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--nonblocking",
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield True
    finally:
        proc.send_signal(2)  # SIGINT: py-spy writes what it sampled and exits
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _frame(raw: str) -> str:
    """``get (django/core/cache/backends/redis.py:123)`` -> without the line number."""
    return _LINE.sub(")", raw.strip())


def summary(path: Path, *, top: int = 25, within: str = "") -> dict:
    """Inclusive and self shares of the samples whose stack contains ``within`` (e.g.
    the WSGI handler: request work only, not the idle poller), by function."""
    inclusive, own, total = Counter(), Counter(), 0
    if not path.exists():
        return {"samples": 0, "inclusive": [], "self": []}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit() or within not in stack:
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";")[2:]]  # after process and thread
        if not frames:
            continue
        total += n
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n

    def shares(counter: Counter) -> list[tuple[str, float]]:
        return [(f, round(100 * c / total, 1)) for f, c in counter.most_common(top)]

    return {"samples": total, "inclusive": shares(inclusive), "self": shares(own)}
