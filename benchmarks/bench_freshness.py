"""Freshness: from the ``202`` of ``POST /api/v1/usage/events`` to the dashboard's chart
JSON (``/dashboard/chart/api_calls.json``) showing the event, both through gunicorn in
production settings. After each 202 a signed-in client polls the chart JSON back to back
until its total includes the event; the sample is the time from the 202 to the end of
the first response that shows it (so it includes one chart request).

    python -m benchmarks.bench_freshness --samples 200
"""

from __future__ import annotations

import json
import sys
import time

from benchmarks import environment, fixtures
from benchmarks.common import Figure, check, log, percentile

TARGET_P99_S = 2.0
GIVE_UP_S = 30.0


def add_arguments(parser) -> None:
    parser.add_argument("--samples", type=int, default=200, help="events, one at a time")


def run(env: environment.Env, args) -> list[Figure]:
    from django.db import connections

    account = fixtures.make_account(name="Freshness", plan_key="pro", env=env)
    customer = fixtures.customer_id(account)
    cookie = fixtures.login_cookie(account, "freshness")
    key = fixtures.ingest_key()
    connections.close_all()

    samples, polls = [], []
    with fixtures.gunicorn(env, workers=2, threads=2) as server:
        api, dash = server.connection(), server.connection()

        def chart_total() -> int:
            dash.request("GET", "/dashboard/chart/api_calls.json", headers={"Cookie": cookie})
            response = dash.getresponse()
            body = response.read()
            check(response.status == 200, f"chart: {response.status} {body[:200]!r}")
            return json.loads(body)["total"]

        expected = chart_total()
        check(expected == 0, f"a new account's chart shows {expected}")
        log(f"freshness: {args.samples} events, each polled until the chart shows it")
        for i in range(args.samples):
            body = json.dumps(
                {"event_name": "api_calls", "customer": customer, "identifier": f"fresh-{i}"}
            ).encode()
            api.request(
                "POST",
                "/api/v1/usage/events",
                body=body,
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            )
            response = api.getresponse()
            data = json.loads(response.read())
            accepted_at = time.perf_counter()
            check(response.status == 202 and data["accepted"] == 1, f"ingest: {data}")
            expected += 1
            n = 0
            while True:
                n += 1
                total = chart_total()
                if total >= expected:
                    break
                if time.perf_counter() - accepted_at > GIVE_UP_S:
                    check(False, f"event {i} not on the chart after {GIVE_UP_S}s")
            check(total == expected, f"chart shows {total}, {expected} were accepted")
            samples.append(time.perf_counter() - accepted_at)
            polls.append(n)
        api.close()
        dash.close()

    p50, p99 = percentile(samples, 50), percentile(samples, 99)
    return [
        Figure(
            name="freshness.p50_s",
            label="Freshness 202 -> chart JSON, p50",
            value=p50 * 1000,
            unit="ms",
        ),
        Figure(
            name="freshness.p99_s",
            label="Freshness 202 -> chart JSON, p99",
            value=p99 * 1000,
            unit="ms",
            target=f"< {TARGET_P99_S * 1000:,.0f} ms",
            met=p99 < TARGET_P99_S,
            notes="rollups are written in the ingest transaction",
            extra={
                "samples": len(samples),
                "max_polls": max(polls),
                "mean_polls": sum(polls) / len(polls),
            },
        ),
    ]


def main() -> int:
    return environment.main_for(sys.modules[__name__])


if __name__ == "__main__":
    raise SystemExit(main())
