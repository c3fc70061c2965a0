"""Benchmark fixtures: accounts with a Stripe customer (and a subscription), their login
cookie and an ingest key; gunicorn serving the app."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import ROOT, children_of, proc_status
from benchmarks.environment import Env


# -- accounts ------------------------------------------------------------------------------
def make_account(
    *, name: str, plan_key: str | None, env: Env, period_started_days_ago: float = 0.0
):
    """An account with a Stripe customer in the emulator and, with ``plan_key``, a
    subscription. ``period_started_days_ago`` puts the customer on a test clock frozen
    that long ago, so its current period started then (the clock is not advanced)."""
    from billing.services.accounts import account_create, account_ensure_stripe_customer
    from billing.services.subscriptions import subscription_create
    from billing.stripe_api import stripe_client

    email = re.sub(r"\W", "", name).lower() + "@bench.test"
    account = account_create(name=name, billing_email=email)
    clock = None
    if period_started_days_ago:
        frozen = int(time.time() - period_started_days_ago * 86400)
        clock = stripe_client().v1.test_helpers.test_clocks.create({"frozen_time": frozen}).id
    if plan_key:
        subscription_create(account=account, plan=env.plans[plan_key], test_clock=clock)
    else:
        account_ensure_stripe_customer(account=account, test_clock=clock)
    return account


def customer_id(account) -> str:
    return account.djstripe_customers.get().id


def login_cookie(account, username: str) -> str:
    """A session for a new owner of the account, as a ``Cookie`` header value."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from billing.models import Membership
    from billing.services.accounts import membership_add

    user = get_user_model().objects.create_user(username, password="bench-password-123")
    membership_add(account=account, user=user, role=Membership.Role.OWNER)
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def ingest_key() -> str:
    from usage.services.keys import ingest_key_create

    return ingest_key_create(name="benchmarks")[1]


# -- gunicorn --------------------------------------------------------------------------
def get(conn: http.client.HTTPConnection, path: str, cookie: str) -> tuple[float, int, bytes]:
    """One signed-in GET over a keep-alive connection: (milliseconds, status, body)."""
    started = time.perf_counter()
    conn.request("GET", path, headers={"Cookie": cookie, "Connection": "keep-alive"})
    response = conn.getresponse()
    body = response.read()
    return (time.perf_counter() - started) * 1000, response.status, body


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    workers: int
    threads: int

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def worker_pids(self) -> list[int]:
        return children_of(self.proc.pid)

    def peak_rss(self) -> dict:
        """Peak resident memory (VmHWM) of each web worker and of the master."""
        workers = {pid: proc_status(pid)["VmHWM"] for pid in self.worker_pids()}
        return {"master": proc_status(self.proc.pid)["VmHWM"], "workers": workers}

    def connection(self, timeout: float = 30.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)


@contextlib.contextmanager
def gunicorn(
    env: Env,
    *,
    workers: int,
    threads: int,
    log_path: Path | None = None,
    database_url: str | None = None,
):
    """gunicorn serving config.wsgi in production settings (gthread: keep-alive), on the
    run's database or ``database_url``."""
    from stripe_emulator.testing import free_port

    port = free_port()
    log_path = log_path or env.tmp / f"gunicorn-{port}.log"
    out = log_path.open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--worker-class",
            "gthread",
            "--threads",
            str(threads),
            "--keep-alive",
            "30",
            "--backlog",
            "256",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ, **({"DATABASE_URL": database_url} if database_url else {})},
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    server = Server(proc=proc, port=port, workers=workers, threads=threads)
    try:
        deadline = time.monotonic() + 120  # a busy shared machine starts it slowly
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {log_path.read_text()[-2000:]}")
            try:
                conn = server.connection(timeout=2)
                conn.request("GET", "/accounts/login/")
                conn.getresponse().read()
                conn.close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not answer within 120 s") from None
                time.sleep(0.1)
        # Every worker imports the app lazily: warm each one.
        for _ in range(workers * threads * 2):
            conn = server.connection()
            conn.request("GET", "/accounts/login/")
            conn.getresponse().read()
            conn.close()
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()
