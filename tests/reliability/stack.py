"""The processes of one fault-matrix case: Celery workers and beat (and, for the
PostgreSQL crash, a web server) against a given database, Redis and emulator, with
reporting tuned to run every half second and to retry and re-lease within seconds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from stripe_emulator.testing import free_port
from tests.conftest import ROOT, wait_for


def fast_reporting_env(*, database_url: str, redis_url: str, emulator_url: str) -> dict:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "MD_TEST_STRIPE_API_HOST": emulator_url,
        "STRIPE_TIMEOUT_SECONDS": "1",  # a held answer (record then time out) costs 1 s
        "USAGE_REPORT_INTERVAL_SECONDS": "0.5",
        "USAGE_REPORT_LEASE_SECONDS": "3",  # a SIGKILLed sender's report is resent after 3 s
        "USAGE_REPORT_RETRY_BASE_SECONDS": "0.05",
        "USAGE_REPORT_RETRY_MAX_SECONDS": "0.5",
        "USAGE_REPORT_MAX_CALLS_PER_SECOND": "1000",
        "USAGE_ALERT_SWEEP_SECONDS": "3600",
    }


class Stack:
    """Starts processes with one environment; stops whatever is still running."""

    def __init__(self, env: dict, folder: Path):
        self.env = env
        self.folder = folder
        self.procs: list[subprocess.Popen] = []
        self._n = 0

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        self._n += 1
        path = self.folder / f"{self._n:02d}-{name}.log"
        with path.open("w") as log:
            proc = subprocess.Popen(
                args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        proc.log_path = path
        self.procs.append(proc)
        return proc

    @property
    def workers(self) -> list[subprocess.Popen]:
        return [p for p in self.procs if "worker" in p.log_path.name and p.poll() is None]

    def wait_ready(self, timeout: float = 60) -> None:
        """Until every running worker logged that it is consuming."""
        wait_for(
            lambda: all("ready." in p.log_path.read_text() for p in self.workers),
            timeout=timeout,
            interval=0.1,
            what="the workers to be ready",
        )

    def worker(self, name: str = "worker") -> subprocess.Popen:
        return self._spawn(
            name,
            [
                sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo",
                f"--hostname={name}-{self._n}-{os.getpid()}@%h", "--without-mingle",
                "--without-gossip", "--loglevel=INFO",
            ],
        )  # fmt: skip

    def beat(self) -> subprocess.Popen:
        return self._spawn(
            "beat",
            [
                sys.executable, "-m", "celery", "-A", "config", "beat",
                f"--schedule={self.folder / 'beat-schedule'}", "--loglevel=INFO",
            ],
        )  # fmt: skip

    def web(self) -> str:
        """A threaded web server on a free port; returns its base URL once it answers."""
        import requests

        port = free_port()
        self._spawn(
            "web",
            [sys.executable, "manage.py", "runserver", "--noreload", "--skip-checks",
             f"127.0.0.1:{port}"],
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            try:
                return requests.get(url + "/api/v1/usage/summary", timeout=1).status_code < 500
            except requests.RequestException:
                return False

        wait_for(answers, timeout=30, interval=0.1, what="the web server")
        return url

    @staticmethod
    def sigkill(proc: subprocess.Popen) -> None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        """SIGKILL: nothing of theirs outlives the case (its database is flushed next),
        and a warm shutdown would wait for the pass under way."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()

    def logs(self) -> str:
        """The tail of every log, for a failing case's message."""
        parts = []
        for path in sorted(self.folder.glob("*.log")):
            parts.append(f"--- {path.name}\n{path.read_text()[-3000:]}")
        return "\n".join(parts)
