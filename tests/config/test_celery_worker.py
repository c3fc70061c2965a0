import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_real_worker_on_redis_runs_a_task(celery_worker_process):
    from config.celery import app

    # The test process publishes to Redis; only the worker process can answer.
    result = app.send_task("config.tasks.ping")
    assert result.get(timeout=30) == "pong"
    assert celery_worker_process.poll() is None


CLIENT = """
import django
django.setup()
from config.celery import app, ensure_embedded_broker_dirs
ensure_embedded_broker_dirs()
print(app.send_task("config.tasks.ping").get(timeout=40))
"""


@pytest.mark.slow
def test_embedded_filesystem_broker_runs_a_real_worker(tmp_path):
    """Without REDIS_URL the demo's worker uses kombu's filesystem transport under var/."""
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    env.update(DJANGO_SETTINGS_MODULE="config.settings.local", CELERY_TASK_ALWAYS_EAGER="false")
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
            f"--hostname=fs-{os.getpid()}@%h",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        client = subprocess.run(
            [sys.executable, "-c", CLIENT],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert client.returncode == 0, client.stderr
        assert client.stdout.strip().splitlines()[-1] == "pong"
    finally:
        worker.terminate()
        worker.wait(timeout=15)
        log.close()
