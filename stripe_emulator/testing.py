"""Start the emulator as a subprocess for tests and demos.

    from stripe_emulator.testing import running_emulator

    with running_emulator("--fault-rate", "0.3") as base_url:
        client = stripe.StripeClient(
            "sk_test_123", base_addresses={"api": base_url, "meter_events": base_url}
        )

Only the standard library is used, so the Django side can reuse it.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def control(base_url: str, path: str, data: dict | None = None) -> dict:
    """Call a ``/_emulator/...`` control endpoint (POST with a JSON body if ``data``)."""
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(
        base_url + path,
        data=body,
        method="POST" if body is not None else "GET",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def reset(base_url: str) -> None:
    control(base_url, "/_emulator/reset", {})


def wait_healthy(base_url: str, timeout: float = 15.0, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"stripe_emulator exited with {proc.returncode}")
        try:
            control(base_url, "/_emulator/health")
            return
        except (urllib.error.URLError, OSError, ValueError):
            time.sleep(0.05)
    raise RuntimeError(f"stripe_emulator did not become healthy at {base_url}")


@contextlib.contextmanager
def running_emulator(
    *args: str, port: int | None = None, python: str | None = None, log=None
) -> Iterator[str]:
    """Run ``python -m stripe_emulator --host 127.0.0.1 --port <free port> *args``;
    yield its base URL; terminate it on exit."""
    port = port or free_port()
    base_url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            python or sys.executable,
            "-m",
            "stripe_emulator",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *args,
        ],
        cwd=ROOT,
        stdout=log or subprocess.DEVNULL,
        stderr=log or subprocess.DEVNULL,
    )
    try:
        wait_healthy(base_url, proc=proc)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
