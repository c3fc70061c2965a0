"""Dashboard at scale: p50/p95 of ``/dashboard/`` and ``/dashboard/chart/api_calls.json``
served by gunicorn (production settings, over HTTP, signed in with a session cookie) for
an account with 10,000 API calls in its current period and one with 10,000,000. Both are
loaded with ``COPY`` into ``usage_usageevent``; their hourly rollups are computed from
the ledger with one ``INSERT ... SELECT ... GROUP BY``. The ``COPY`` skips the per-row
foreign key triggers (``session_replication_role = replica``, as bulk loads do).
Requests alternate between the two accounts so both see the same machine noise. Then
the drill-down's pages of both accounts' periods are timed the same way
(:mod:`benchmarks.drilldown_pages`, which closes the periods: run after the dashboard).

    python -m benchmarks.bench_dashboard --big 10000000 --small 10000 --requests 200
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta

from benchmarks import common, drilldown_pages, environment, fixtures
from benchmarks.common import Figure, Timer, check, log, percentile

PERIOD_DAYS_SO_FAR = 20
TARGET_P95_MS = 50.0
TARGET_RATIO = 1.5
CHUNK_ROWS = 200_000


def add_arguments(parser) -> None:
    parser.add_argument("--big", type=int, default=10_000_000, help="events of the big account")
    parser.add_argument("--small", type=int, default=10_000, help="events of the small one")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per URL")


def _copy_events(
    *,
    account_id: int,
    meter_id: int,
    n: int,
    start: datetime,
    end: datetime,
    tag: str,
    burst_hour: datetime | None = None,
    burst: int = 0,
) -> float:
    """COPY n events into the ledger: the first ``burst`` spread evenly over the hour
    starting at ``burst_hour``, the rest evenly over [start, end); returns seconds."""
    from django.db import connection

    connection.ensure_connection()
    pg = connection.connection
    span = (end - start).total_seconds()
    t0 = start.timestamp()
    received = datetime.now(UTC).isoformat()
    payload = "0" * 64
    with Timer() as t:
        with pg.cursor() as cursor:
            # A bulk load: the account and meter exist, so skip the per-row foreign key
            # triggers (superuser only; the rows are checked by the counts afterwards).
            cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            if cursor.fetchone()[0]:
                cursor.execute("SET session_replication_role = replica")
            with cursor.copy(
                "COPY usage_usageevent (identifier, account_id, meter_id, value, timestamp, "
                "received_at, payload_hash) FROM STDIN"
            ) as copy:
                for first in range(0, n, CHUNK_ROWS):
                    lines = []
                    for i in range(first, min(n, first + CHUNK_ROWS)):
                        if i < burst:
                            at = burst_hour.timestamp() + 3600 * i / burst
                        else:
                            at = t0 + span * (i - burst) / (n - burst)
                        ts = datetime.fromtimestamp(int(at), UTC).isoformat()
                        lines.append(
                            f"{tag}-{i:09d}\t{account_id}\t{meter_id}\t1\t{ts}\t{received}\t"
                            f"{payload}\n"
                        )
                    copy.write("".join(lines).encode())
            cursor.execute("SET session_replication_role = DEFAULT")
        pg.commit()
    return t.seconds


def _rollups_from_ledger(account_id: int) -> float:
    """The account's hourly rollups from its ledger, in one INSERT ... SELECT ... GROUP BY."""
    with Timer() as t:
        common.raw_sql("SET TIME ZONE 'UTC'", fetch=False)
        common.raw_sql("SET work_mem = '256MB'", fetch=False)
        common.raw_sql(
            """
            INSERT INTO usage_usagerollup
                (account_id, meter_id, hour, sum_value, event_count, last_value,
                 last_timestamp, last_event_id)
            SELECT account_id, meter_id, date_trunc('hour', timestamp), sum(value), count(*),
                   (array_agg(value ORDER BY timestamp DESC, id DESC))[1],
                   max(timestamp),
                   (array_agg(id ORDER BY timestamp DESC, id DESC))[1]
            FROM usage_usageevent WHERE account_id = %s
            GROUP BY account_id, meter_id, date_trunc('hour', timestamp)
            ON CONFLICT (account_id, meter_id, hour) DO NOTHING
            """,
            [account_id],
            fetch=False,
        )
        common.raw_sql("RESET work_mem", fetch=False)
    return t.seconds


URLS = {"page": "/dashboard/", "chart": "/dashboard/chart/api_calls.json"}


def time_pages(server, accounts: dict, *, requests: int) -> dict[tuple[str, str], list[float]]:
    """Milliseconds of each URL of ``URLS`` per account label, alternating accounts and
    URLs over one keep-alive connection; ``accounts``: label -> (account, events in its
    period, cookie). First checks each chart's total and each page's figure, then warms
    every worker's caches."""
    samples: dict[tuple[str, str], list[float]] = {
        (kind, label): [] for kind in URLS for label in accounts
    }
    conn = server.connection()
    for label, (_, n, cookie) in accounts.items():
        _, status, body = fixtures.get(conn, URLS["chart"], cookie)
        check(status == 200, f"chart {label}: {status} {body[:300]!r}")
        total = json.loads(body)["total"]
        check(total == n, f"chart {label}: total {total}, the period holds {n}")
        _, status, body = fixtures.get(conn, URLS["page"], cookie)
        check(status == 200, f"page {label}: {status} {body[:300]!r}")
        check(f"{n:,}".encode() in body, f"page {label} does not show {n:,}")
    for _ in range(10):
        for path in URLS.values():
            for _, _, cookie in accounts.values():
                fixtures.get(conn, path, cookie)
    for _ in range(requests):
        for kind, path in URLS.items():
            for label, (_, _, cookie) in accounts.items():
                ms, status, _ = fixtures.get(conn, path, cookie)
                check(status == 200, f"{kind} {label}: {status}")
                samples[(kind, label)].append(ms)
    conn.close()
    return samples


def run(env: environment.Env, args) -> list[Figure]:
    from django.db import connections

    from billing.models import Meter
    from usage.services.ingest import usage_events_ingest

    api_calls = Meter.objects.get(event_name="api_calls")
    accounts = {}
    for label, n in (("small", args.small), ("big", args.big)):
        account = fixtures.make_account(
            name=f"Dashboard {label}",
            plan_key="pro",
            env=env,
            period_started_days_ago=PERIOD_DAYS_SO_FAR,
        )
        accounts[label] = (account, n, fixtures.login_cookie(account, f"dash-{label}"))

    from billing.mirror.subscriptions import subscription_state_for_account

    timings = {}
    for label, (account, n, _) in accounts.items():
        state = subscription_state_for_account(account=account)
        start = state.period_start
        now = datetime.now(UTC)
        check(start < now - timedelta(days=PERIOD_DAYS_SO_FAR - 1), f"period starts {start}")
        end = now - timedelta(minutes=2)
        log(f"dashboard: COPY {n:,} events for the {label} account ({start:%Y-%m-%d} to now)")
        copy_s = _copy_events(
            account_id=account.pk,
            meter_id=api_calls.pk,
            n=n,
            start=start,
            end=end,
            tag=f"dash-{label}",
            burst_hour=drilldown_pages.busy_hour(start),
            burst=drilldown_pages.burst_for(n),
        )
        roll_s = _rollups_from_ledger(account.pk)
        log(
            f"dashboard: {label}: COPY {copy_s:.1f}s ({n / copy_s:,.0f} rows/s), "
            f"rollups {roll_s:.1f}s"
        )
        timings[label] = {"copy_seconds": copy_s, "rollup_seconds": roll_s}
        # A few seat counts through the service, so the "last" meter has data too.
        result = usage_events_ingest(
            events=[
                {
                    "event_name": "seats",
                    "customer": fixtures.customer_id(account),
                    "value": v,
                    "identifier": f"dash-{label}-seat-{v}",
                }
                for v in (3, 4, 5)
            ]
        )
        check(result.accepted == 3, f"seat events: {result.as_dict()}")
        stored, rolled = common.raw_sql(
            "SELECT (SELECT count(*) FROM usage_usageevent"
            " WHERE account_id = %s AND meter_id = %s),"
            " (SELECT sum(event_count) FROM usage_usagerollup WHERE account_id = %s"
            " AND meter_id = %s)",
            [account.pk, api_calls.pk, account.pk, api_calls.pk],
        )[0]
        check(stored == n and rolled == n, f"{label}: ledger {stored}, rollups {rolled}, sent {n}")
    with Timer() as t:
        common.raw_sql("VACUUM (ANALYZE) usage_usageevent", fetch=False)
        common.raw_sql("VACUUM (ANALYZE) usage_usagerollup", fetch=False)
    log(f"dashboard: VACUUM ANALYZE {t.seconds:.1f}s")
    rollup_rows = common.raw_sql("SELECT count(*) FROM usage_usagerollup")[0][0]

    connections.close_all()
    with fixtures.gunicorn(env, workers=2, threads=1) as server:
        samples = time_pages(server, accounts, requests=args.requests)

    figures = []
    drill = drilldown_pages.run(env, accounts=accounts, meter=api_calls, requests=args.requests)
    big_label = f"{args.big:,}"
    for kind, name in (("page", "/dashboard/"), ("chart", "chart JSON")):
        small, big = samples[(kind, "small")], samples[(kind, "big")]
        p95_small, p95_big = percentile(small, 95), percentile(big, 95)
        figures.append(
            Figure(
                name=f"dashboard.{kind}_p50_ms",
                label=f"{name} p50 at {big_label} events",
                value=percentile(big, 50),
                unit="ms",
                baseline=percentile(small, 50),
                baseline_label=f"at {args.small:,}",
            )
        )
        figures.append(
            Figure(
                name=f"dashboard.{kind}_p95_ms",
                label=f"{name} p95 at {big_label} events",
                value=p95_big,
                unit="ms",
                baseline=p95_small,
                baseline_label=f"at {args.small:,}",
                target=f"< {TARGET_P95_MS:g} ms, <= {TARGET_RATIO:g}x",
                met=p95_big < TARGET_P95_MS and p95_big <= TARGET_RATIO * p95_small,
                notes="gunicorn 2 workers, one sequential keep-alive client",
                extra={
                    "requests": len(big),
                    "events_big": args.big,
                    "events_small": args.small,
                    "rollup_rows_total": rollup_rows,
                    "load": timings,
                },
            )
        )
    return figures + drilldown_pages.figures(drill, big=args.big, small=args.small)


def main() -> int:
    return environment.main_for(sys.modules[__name__])


if __name__ == "__main__":
    raise SystemExit(main())
