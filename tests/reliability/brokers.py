"""A throwaway Redis server the reliability tests may kill, and the Celery app pointed at it."""

import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from stripe_emulator.testing import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class ThrowawayRedis:
    def __init__(self, folder: Path):
        self.port = free_port()
        self.folder = folder
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_connect_timeout=0.2).ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise AssertionError("the throwaway redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def throwaway_redis(tmp_path):
    if not Path(REDIS_SERVER).exists():
        pytest.skip("redis-server is not installed")
    server = ThrowawayRedis(tmp_path)
    server.start()
    yield server
    server.kill()


@contextmanager
def celery_publishing_to(url: str):
    """Celery publishes (not eagerly) to ``url`` inside the block; pools are rebuilt on
    the way in and out so no connection to the previous broker is reused."""
    from config.celery import app

    saved = app.conf.broker_url, app.conf.task_always_eager

    def reset_pools():
        app._pool = None
        app.amqp._producer_pool = None

    app.conf.broker_url, app.conf.task_always_eager = url, False
    reset_pools()
    try:
        yield app
    finally:
        app.conf.broker_url, app.conf.task_always_eager = saved
        reset_pools()
