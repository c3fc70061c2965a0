"""Ingestion throughput: ``POST /api/v1/usage/events`` under gunicorn (production
settings) with 1,000-event batches from concurrent keep-alive clients, against the
same-run baseline of PostgreSQL ``COPY`` of the same rows into a copy of the events
table with its indexes; single-event p50/p99 latency; the web workers' peak memory.

    python -m benchmarks.bench_ingest --events 200000 --clients 4 --workers 2 --threads 2
"""

from __future__ import annotations

import io
import json
import multiprocessing
import random
import sys
import time
import uuid
from datetime import UTC, datetime

from benchmarks import common
from benchmarks.common import Figure, Timer, check, log, percentile

METERS = ("api_calls", "data_transfer_gb", "transactions")
TARGET_EPS = 25_000
TARGET_SINGLE_P99_MS = 20.0

# Filled before the client processes fork; they only read it.
_BODIES: list[bytes] = []
_KEY = ""
_PORT = 0


def add_arguments(parser) -> None:
    parser.add_argument("--events", type=int, default=200_000, help="events in 1,000 batches")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client processes")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=2, help="threads per gunicorn worker")
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--single", type=int, default=1000, help="single-event requests")


def _events(n: int, customers: list[str], run: str) -> list[dict]:
    rng = random.Random(7)
    now = int(time.time())
    return [
        {
            "event_name": METERS[i % len(METERS)],
            "customer": customers[rng.randrange(len(customers))],
            "value": rng.randint(1, 50),
            "timestamp": now - rng.randint(0, 3599),
            "identifier": f"{run}_{uuid.UUID(int=rng.getrandbits(128)).hex}",
        }
        for i in range(n)
    ]


def _post(conn, body: bytes) -> tuple[int, dict]:
    conn.request(
        "POST",
        "/api/v1/usage/events",
        body=body,
        headers={
            "Authorization": f"Bearer {_KEY}",
            "Content-Type": "application/json",
            "Connection": "keep-alive",
        },
    )
    response = conn.getresponse()
    data = response.read()
    return response.status, json.loads(data)


def _client(indices: list[int]) -> list[tuple[float, int, int, int]]:
    """One client process: its batches in order on one keep-alive connection."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", _PORT, timeout=120)
    out = []
    for i in indices:
        started = time.perf_counter()
        status, data = _post(conn, _BODIES[i])
        out.append(
            (
                time.perf_counter() - started,
                status,
                data.get("accepted", -1),
                data.get("duplicates", -1) + len(data.get("rejected", [])),
            )
        )
    conn.close()
    return out


def _noop(_):
    return None


def _copy_baseline(rows: list[tuple], received_at: datetime) -> float:
    """Seconds to COPY the rows into a fresh copy of usage_usageevent (with its indexes)."""
    from django.db import connection

    buf = io.StringIO()
    stamp = received_at.isoformat()
    for identifier, account_id, meter_id, value, ts, payload_hash in rows:
        buf.write(
            f"{identifier}\t{account_id}\t{meter_id}\t{value}\t{ts.isoformat()}\t{stamp}\t"
            f"{payload_hash}\n"
        )
    data = buf.getvalue().encode()
    common.raw_sql("DROP TABLE IF EXISTS bench_copy", fetch=False)
    common.raw_sql("CREATE TABLE bench_copy (LIKE usage_usageevent INCLUDING ALL)", fetch=False)
    indexes = common.raw_sql("SELECT indexdef FROM pg_indexes WHERE tablename = 'bench_copy'")
    log(f"COPY baseline table has {len(indexes)} indexes: " + "; ".join(i[0] for i in indexes))
    connection.ensure_connection()
    pg = connection.connection  # psycopg 3
    with Timer() as t:
        with (
            pg.cursor() as cursor,
            cursor.copy(
                "COPY bench_copy (identifier, account_id, meter_id, value, timestamp, "
                "received_at, payload_hash) FROM STDIN"
            ) as copy,
        ):
            for start in range(0, len(data), 1 << 20):
                copy.write(data[start : start + (1 << 20)])
        pg.commit()
    count = common.raw_sql("SELECT count(*) FROM bench_copy")[0][0]
    check(count == len(rows), f"COPY baseline stored {count} rows, expected {len(rows)}")
    common.raw_sql("DROP TABLE bench_copy", fetch=False)
    return t.seconds


def run(env: common.Env, args) -> list[Figure]:
    global _BODIES, _KEY, _PORT
    from django.db import connections

    from billing.models import Meter
    from usage.services.ingest import payload_hash

    check(args.events % 1000 == 0 and args.events > 0, "--events must be a multiple of 1,000")
    run_id = f"ing{int(time.time())}"
    log(f"ingest: {args.customers} customers, {args.events:,} events")
    accounts = [
        common.make_account(name=f"Ingest {i}", plan_key=None, env=env)
        for i in range(args.customers)
    ]
    customers = [common.customer_id(a) for a in accounts]
    account_of = {common.customer_id(a): a.pk for a in accounts}
    meter_of = dict(Meter.objects.values_list("event_name", "pk"))
    _KEY = common.ingest_key()

    events = _events(args.events, customers, run_id)
    _BODIES = [
        json.dumps({"events": events[i : i + 1000]}).encode() for i in range(0, len(events), 1000)
    ]
    rows = []
    for e in events:
        ts = datetime.fromtimestamp(e["timestamp"], UTC)
        h = payload_hash(
            event_name=e["event_name"], customer=e["customer"], value=e["value"], timestamp=ts
        )
        rows.append(
            (
                e["identifier"],
                account_of[e["customer"]],
                meter_of[e["event_name"]],
                e["value"],
                ts,
                h,
            )
        )

    log("ingest: COPY baseline")
    copy_seconds = _copy_baseline(rows, datetime.now(UTC))
    copy_rate = len(rows) / copy_seconds
    log(f"ingest: COPY {len(rows):,} rows in {copy_seconds:.2f}s = {copy_rate:,.0f} rows/s")
    del rows

    connections.close_all()  # nothing Django-side may cross the fork
    with common.gunicorn(env, workers=args.workers, threads=args.threads) as server:
        _PORT = server.port
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(args.clients) as pool:
            pool.map(_noop, range(args.clients))  # processes up before the clock starts
            chunks = [list(range(c, len(_BODIES), args.clients)) for c in range(args.clients)]
            log(
                f"ingest: {len(_BODIES)} batches from {args.clients} clients to gunicorn "
                f"{args.workers}x{args.threads} (gthread)"
            )
            with Timer() as t:
                results = pool.map(_client, chunks)
        samples = [r for chunk in results for r in chunk]
        bad = [r for r in samples if r[1] != 202 or r[2] != 1000 or r[3] != 0]
        check(not bad, f"{len(bad)} batches were not fully accepted, e.g. {bad[:3]}")
        accepted = sum(r[2] for r in samples)
        eps = accepted / t.seconds
        batch_ms = [r[0] * 1000 for r in samples]
        log(f"ingest: {accepted:,} events in {t.seconds:.2f}s = {eps:,.0f} events/s")

        stored = common.raw_sql(
            "SELECT count(*) FROM usage_usageevent WHERE identifier LIKE %s", [run_id + "_%"]
        )[0][0]
        check(stored == args.events, f"ledger holds {stored} events, {args.events} were sent")

        # Single-event requests, one client, one keep-alive connection, sequential.
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        single = _events(args.single, customers, run_id + "s")
        latencies = []
        for event in single[:20]:  # warm the connection and the workers' caches
            event_copy = dict(event, identifier=event["identifier"] + "w")
            status, _ = _post(conn, json.dumps(event_copy).encode())
        for event in single:
            body = json.dumps(event).encode()
            started = time.perf_counter()
            status, data = _post(conn, body)
            latencies.append((time.perf_counter() - started) * 1000)
            check(status == 202 and data["accepted"] == 1, f"single event: {status} {data}")
        conn.close()
        memory = server.peak_rss()

    stored_all = common.raw_sql(
        "SELECT count(*) FROM usage_usageevent WHERE account_id = ANY(%s)",
        [[a.pk for a in accounts]],
    )[0][0]
    rolled = common.raw_sql(
        "SELECT coalesce(sum(event_count), 0) FROM usage_usagerollup WHERE account_id = ANY(%s)",
        [[a.pk for a in accounts]],
    )[0][0]
    expected = args.events + args.single + 20
    check(stored_all == expected, f"ledger has {stored_all} events, expected {expected}")
    check(rolled == expected, f"rollups count {rolled} events, the ledger {expected}")

    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    worker_peak = max(memory["workers"].values()) if memory["workers"] else 0
    mb = 1024 * 1024
    config = f"gunicorn {args.workers}w x {args.threads}t gthread, {args.clients} clients"
    return [
        Figure(
            name="ingest.events_per_second",
            label="Ingest, 1,000-event batches (events/s)",
            value=eps,
            unit="/s",
            baseline=copy_rate,
            baseline_label="COPY rows/s",
            target=f">= {TARGET_EPS:,}/s (~0.1x COPY)",
            met=eps >= TARGET_EPS,
            notes=config,
            extra={
                "events": accepted,
                "seconds": t.seconds,
                "batch_ms_p50": percentile(batch_ms, 50),
                "batch_ms_p99": percentile(batch_ms, 99),
                "copy_seconds": copy_seconds,
                "copy_rows_per_second": copy_rate,
            },
        ),
        Figure(
            name="ingest.single_p50_ms",
            label="Single-event request p50",
            value=p50,
            unit="ms",
            notes="one keep-alive client, sequential",
        ),
        Figure(
            name="ingest.single_p99_ms",
            label="Single-event request p99",
            value=p99,
            unit="ms",
            target=f"< {TARGET_SINGLE_P99_MS:g} ms",
            met=p99 < TARGET_SINGLE_P99_MS,
            extra={"requests": len(latencies)},
        ),
        Figure(
            name="ingest.web_worker_peak_rss_mb",
            label="Web worker peak RSS (max over workers)",
            value=worker_peak / mb,
            unit="MB",
            notes=f"master {memory['master'] / mb:.0f} MB",
            extra={
                "workers_mb": {str(k): v / mb for k, v in memory["workers"].items()},
                "master_mb": memory["master"] / mb,
            },
        ),
    ]


def main() -> int:
    return common.main_for(sys.modules[__name__])


if __name__ == "__main__":
    raise SystemExit(main())
