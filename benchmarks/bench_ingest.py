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

from benchmarks import common, environment, fixtures, ingest_baseline
from benchmarks.common import Figure, Timer, check, log, percentile

METERS = ("api_calls", "data_transfer_gb", "transactions")
TARGET_EPS = 25_000
TARGET_SINGLE_P99_MS = 20.0

# Filled before the client processes fork; they only read it.
_BODIES: list[bytes] = []
_KEY = ""
_PORT = 0


def add_arguments(parser) -> None:
    parser.add_argument("--events", type=int, default=300_000, help="events in 1,000 batches")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client processes")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=2, help="threads per gunicorn worker")
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--single", type=int, default=1000, help="single-event requests")
    parser.add_argument("--profile", action="store_true", help="cProfile batches in-process")
    parser.add_argument(
        "--no-what-if",
        dest="what_if",
        action="store_false",
        help="skip the second run without the redundant indexes",
    )


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


def _batches(pool, indices: list[int], clients: int) -> tuple[list, float]:
    """Post the batches ``indices`` of _BODIES from the pool's clients: (samples, seconds)."""
    chunks = [indices[c::clients] for c in range(clients)]
    with Timer() as t:
        results = pool.map(_client, chunks)
    samples = [r for chunk in results for r in chunk]
    bad = [r for r in samples if r[1] != 202 or r[2] != 1000 or r[3] != 0]
    check(not bad, f"{len(bad)} batches were not fully accepted, e.g. {bad[:3]}")
    return samples, t.seconds


def _summary(samples: list, seconds: float) -> dict:
    accepted = sum(r[2] for r in samples)
    batch_ms = [r[0] * 1000 for r in samples]
    return {
        "events": accepted,
        "seconds": seconds,
        "eps": accepted / seconds,
        "batch_ms_p50": percentile(batch_ms, 50),
        "batch_ms_p99": percentile(batch_ms, 99),
    }


def profile_in_process(customers: list[str], run_id: str, batches: int = 40) -> str:
    """cProfile of 1,000-event batches through the whole Django stack, in this process
    (test Client, production settings), with the share of time spent waiting on SQL."""
    import cProfile
    import pstats

    from django.db import connection
    from django.test import Client

    client = Client()
    bodies = [
        json.dumps({"events": _events(1000, customers, f"{run_id}p{i}")}).encode()
        for i in range(batches)
    ]
    sql = {"seconds": 0.0, "queries": 0}

    def timed(execute, sql_text, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql_text, params, many, context)
        finally:
            sql["seconds"] += time.perf_counter() - started
            sql["queries"] += 1

    profiler = cProfile.Profile()
    with connection.execute_wrapper(timed), Timer() as t:
        profiler.enable()
        for body in bodies:
            response = client.post(
                "/api/v1/usage/events",
                data=body,
                content_type="application/json",
                headers={"Authorization": f"Bearer {_KEY}"},
            )
            check(response.status_code == 202, f"profile batch: {response.status_code}")
        profiler.disable()
    out = io.StringIO()
    out.write(
        f"{batches} batches of 1,000 in-process: {t.seconds / batches * 1000:.1f} ms per batch "
        f"(under cProfile), SQL {sql['seconds'] / batches * 1000:.1f} ms per batch in "
        f"{sql['queries'] / batches:.1f} queries\n"
    )
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(
        r"views.py.*\(events\)|ingest.py.*\(usage_events_ingest\)|ledger_writes.py.*\("
        r"(insert_events|upsert_rollups|_source)\)|alert_scheduling.py.*\(alerts_schedule|"
        r"api_body.py.*\(parse_events\)|json/__init__.py|"
        r"event_validation.py.*\(validate_event\)|"
        r"keys.py.*authenticate|http/response.py.*__init__|core/cache/backends/redis.py.*add"
    )
    stats.sort_stats("tottime").print_stats(12)
    return out.getvalue()


def run(env: environment.Env, args) -> list[Figure]:
    global _BODIES, _KEY, _PORT
    from django.db import connections

    from billing.models import Meter

    check(args.events % 1000 == 0 and args.events > 0, "--events must be a multiple of 1,000")
    run_id = f"ing{int(time.time())}"
    log(f"ingest: {args.customers} customers, {args.events:,} events")
    accounts = [
        fixtures.make_account(name=f"Ingest {i}", plan_key=None, env=env)
        for i in range(args.customers)
    ]
    customers = [fixtures.customer_id(a) for a in accounts]
    account_of = {fixtures.customer_id(a): a.pk for a in accounts}
    meter_of = dict(Meter.objects.values_list("event_name", "pk"))
    _KEY = fixtures.ingest_key()

    events = _events(args.events, customers, run_id)
    what_if = args.what_if and ingest_baseline.redundant_present()
    whatif = _events(args.events, customers, run_id + "x") if what_if else []
    _BODIES = [
        json.dumps({"events": batch[i : i + 1000]}).encode()
        for batch in (events, whatif)
        for i in range(0, len(batch), 1000)
    ]
    n_main = args.events // 1000

    log("ingest: COPY baselines")
    copy = ingest_baseline.copy_baselines(ingest_baseline.copy_rows(events, account_of, meter_of))
    log(
        "ingest: COPY rows/s: "
        + ", ".join(f"{k} {v:,.0f}" for k, v in copy.items() if k != "indexes")
    )

    connections.close_all()  # nothing Django-side may cross the fork
    with fixtures.gunicorn(env, workers=args.workers, threads=args.threads) as server:
        _PORT = server.port
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(args.clients) as pool:
            pool.map(_noop, range(args.clients))  # processes up before the clock starts
            log(
                f"ingest: {n_main} batches from {args.clients} clients to gunicorn "
                f"{args.workers}x{args.threads} (gthread)"
            )
            # As is, and (what-if) without the redundant indexes, in alternating halves
            # (A B A B), each from a settled database, so drift and noise hit both.
            half = n_main // 2
            segments = [("as_is", list(range(n_main)))]
            if whatif:
                main_idx, what_idx = list(range(n_main)), list(range(n_main, 2 * n_main))
                segments = [
                    ("as_is", main_idx[:half]),
                    ("dropped", what_idx[:half]),
                    ("as_is", main_idx[half:]),
                    ("dropped", what_idx[half:]),
                ]
            runs: dict[str, tuple[list, float]] = {}
            for kind, indices in segments:
                ingest_baseline.settle()
                definitions = ingest_baseline.drop_redundant_indexes() if kind == "dropped" else []
                try:
                    samples, seconds = _batches(pool, indices, args.clients)
                finally:
                    for definition in definitions:
                        common.raw_sql(definition, fetch=False)
                previous = runs.get(kind, ([], 0.0))
                runs[kind] = (previous[0] + samples, previous[1] + seconds)
                log(
                    f"ingest: {kind}: {len(indices)} batches at "
                    f"{len(indices) * 1000 / seconds:,.0f} events/s"
                )
            main = _summary(*runs["as_is"])
            check(
                ingest_baseline.stored(run_id) == args.events,
                f"ledger: {ingest_baseline.stored(run_id)} of {args.events}",
            )
            log(
                f"ingest: {main['events']:,} events in {main['seconds']:.2f}s = "
                f"{main['eps']:,.0f} events/s"
            )
            if whatif:
                dropped = _summary(*runs["dropped"])
                check(
                    ingest_baseline.stored(run_id + "x") == args.events,
                    "what-if events not all stored",
                )
                log(f"ingest: without the redundant indexes {dropped['eps']:,.0f} events/s")

            # Single-event requests, one client, one keep-alive connection, sequential.
            import http.client

            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            single = _events(args.single, customers, run_id + "s")
            latencies = []
            for event in single[:20]:  # warm the connection and the workers' caches
                _post(conn, json.dumps(dict(event, identifier=event["identifier"] + "w")).encode())
            for event in single:
                body = json.dumps(event).encode()
                started = time.perf_counter()
                status, data = _post(conn, body)
                latencies.append((time.perf_counter() - started) * 1000)
                check(status == 202 and data["accepted"] == 1, f"single event: {status} {data}")
            conn.close()

        memory = server.peak_rss()

    ids = [a.pk for a in accounts]
    stored_all = common.raw_sql(
        "SELECT count(*) FROM usage_usageevent WHERE account_id = ANY(%s)", [ids]
    )[0][0]
    rolled = common.raw_sql(
        "SELECT coalesce(sum(event_count), 0) FROM usage_usagerollup WHERE account_id = ANY(%s)",
        [ids],
    )[0][0]
    expected = args.events * (2 if whatif else 1) + args.single + 20
    check(stored_all == expected, f"ledger has {stored_all} events, expected {expected}")
    check(rolled == expected, f"rollups count {rolled} events, the ledger {expected}")

    profile = profile_in_process(customers, run_id) if args.profile else None
    if profile:
        print(profile, file=sys.stderr)
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    worker_peak = max(memory["workers"].values()) if memory["workers"] else 0
    mb = 1024 * 1024
    config = f"gunicorn {args.workers}w x {args.threads}t gthread, {args.clients} clients"
    figures = [
        Figure(
            name="ingest.events_per_second",
            label="Ingest, 1,000-event batches (events/s)",
            value=main["eps"],
            unit="/s",
            baseline=copy["all"],
            baseline_label="COPY rows/s",
            target=f">= {TARGET_EPS:,}/s (~0.1x COPY)",
            met=main["eps"] >= TARGET_EPS,
            notes=config,
            extra={**main, "copy_rows_per_second": copy, "profile": profile},
        ),
    ]
    if whatif:
        figures.append(
            Figure(
                name="ingest.events_per_second_without_redundant_indexes",
                label="  what-if: 3 redundant indexes dropped",
                value=dropped["eps"],
                unit="/s",
                baseline=main["eps"],
                baseline_label="as is",
                notes="proposal, measured on this run's database only",
                extra={**dropped, "dropped": ingest_baseline.REDUNDANT},
            )
        )
    figures += [
        Figure(
            name="ingest.copy_rows_per_second_minimal_indexes",
            label="  COPY with only pkey + identifier index",
            value=copy["minimal"],
            unit="/s",
            baseline=copy["all"],
            baseline_label=f"all {copy['indexes']} indexes",
            notes="the issue's reference setup",
            extra={"proposed_indexes_rows_per_second": copy.get("proposed")},
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
    return figures


def main() -> int:
    return environment.main_for(sys.modules[__name__])


if __name__ == "__main__":
    raise SystemExit(main())
