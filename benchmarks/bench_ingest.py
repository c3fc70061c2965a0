"""Ingestion throughput: ``POST /api/v1/usage/events`` under gunicorn (production
settings) with 1,000-event batches from concurrent keep-alive clients, against the
same-run baseline of PostgreSQL ``COPY`` of the same rows into copies of both tables an
ingest writes (the partitioned ledger with its indexes, and the identifier table);
where the web workers' time goes (py-spy, when installed); single-event p50/p99
latency; the web workers' peak memory.

Then the same ingestion on a ledger that already holds ``--ledger-rows`` events (100 M:
:mod:`benchmarks.ledger_load`, a persistent database loaded once with COPY and reused)
against the same run's rate on one holding ``--ledger-small`` (1 M, loaded the same
way), in alternating segments (small, big, small, big).

    python -m benchmarks.bench_ingest --events 200000 --clients 4 --workers 2 --threads 2
    python -m benchmarks.bench_ingest --ledger-rows 10000000   # a quicker scale stage
    python -m benchmarks.bench_ingest --ledger-rows 0          # without it
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import random
import sys
import time
import uuid
from pathlib import Path

from benchmarks import common, environment, fixtures, ingest_baseline, ledger_load, pyspy_profile
from benchmarks.common import Figure, Timer, check, log, percentile

METERS = ("api_calls", "data_transfer_gb", "transactions")
TARGET_RATIO = 0.5  # of the same-run COPY
TARGET_SCALE_RATIO = 0.9  # on the big ledger, of the rate on the small one
TARGET_SINGLE_P99_MS = 20.0

# Filled before the client processes fork; they only read it.
_BODIES: list[bytes] = []


def add_arguments(parser) -> None:
    parser.add_argument("--events", type=int, default=300_000, help="events in 1,000 batches")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client processes")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=2, help="threads per gunicorn worker")
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--single", type=int, default=1000, help="single-event requests")
    parser.add_argument("--profile", action="store_true", help="cProfile batches in-process")
    parser.add_argument(
        "--ledger-rows",
        type=int,
        default=100_000_000,
        help="the big ledger's events for the scale stage (0: no stage)",
    )
    parser.add_argument(
        "--ledger-small", type=int, default=1_000_000, help="the scale stage's small ledger"
    )
    parser.add_argument(
        "--ledger-events", type=int, default=100_000, help="events per scale-stage segment"
    )


def _events(n: int, customers: list[str], run: str, *, random_ids: bool = False) -> list[dict]:
    """``random_ids``: identifiers of 32 random hex digits (a client's UUIDs), spread
    over the whole identifier index, else ``<run>_<hex>`` (new keys side by side)."""
    rng = random.Random(f"{run}-{n}")
    now = int(time.time())
    return [
        {
            "event_name": METERS[i % len(METERS)],
            "customer": customers[rng.randrange(len(customers))],
            "value": rng.randint(1, 50),
            "timestamp": now - rng.randint(0, 3599),
            "identifier": (
                uuid.UUID(int=rng.getrandbits(128)).hex
                if random_ids
                else f"{run}_{uuid.UUID(int=rng.getrandbits(128)).hex}"
            ),
        }
        for i in range(n)
    ]


def _post(conn, body: bytes, key: str) -> tuple[int, dict]:
    conn.request(
        "POST",
        "/api/v1/usage/events",
        body=body,
        headers={
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
            "Connection": "keep-alive",
        },
    )
    response = conn.getresponse()
    data = response.read()
    return response.status, json.loads(data)


def _client(job: tuple[int, str, list[int]]) -> list[tuple[float, int, int, int]]:
    """One client process: its batches in order on one keep-alive connection."""
    import http.client

    port, key, indices = job
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    out = []
    for i in indices:
        started = time.perf_counter()
        status, data = _post(conn, _BODIES[i], key)
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


def _batches(pool, indices: list[int], clients: int, port: int, key: str) -> tuple[list, float]:
    """Post the batches ``indices`` of _BODIES from the pool's clients: (samples, seconds)."""
    chunks = [(port, key, indices[c::clients]) for c in range(clients)]
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


def profile_in_process(customers: list[str], run_id: str, key: str, batches: int = 40) -> str:
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
                headers={"Authorization": f"Bearer {key}"},
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
        r"(insert_events|insert_events_with_rollups|upsert_rollups|_source)\)|"
        r"alert_scheduling.py.*\(alerts_schedule|hour_cap.py.*\(events_store_within_cap\)|"
        r"entitlement_ingest.py.*\(usage_record\)|billing/mirror/customers.py.*\(accounts_and|"
        r"api_body.py.*\(parse_events\)|json/__init__.py|"
        r"event_validation.py.*\(validate_events?\)|"
        r"keys.py.*authenticate|http/response.py.*__init__|core/cache/backends/redis.py.*add"
    )
    stats.sort_stats("tottime").print_stats(12)
    return out.getvalue()


def _pool(clients: int):
    """Client processes, forked now (they see _BODIES as it is), up before any clock."""
    pool = multiprocessing.get_context("fork").Pool(clients)
    pool.map(_noop, range(clients))
    return pool


def run(env: environment.Env, args) -> list[Figure]:
    global _BODIES
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
    key = fixtures.ingest_key()

    events = _events(args.events, customers, run_id)
    _BODIES = [
        json.dumps({"events": events[i : i + 1000]}).encode() for i in range(0, len(events), 1000)
    ]
    n_main = args.events // 1000

    log("ingest: COPY baselines")
    copy = ingest_baseline.copy_baselines(ingest_baseline.copy_rows(events, account_of, meter_of))
    log(
        "ingest: COPY rows/s: "
        + ", ".join(f"{k} {v:,.0f}" for k, v in copy.items() if k != "indexes")
    )

    connections.close_all()  # nothing Django-side may cross the fork
    spy = None
    with fixtures.gunicorn(env, workers=args.workers, threads=args.threads) as server:
        with _pool(args.clients) as pool:
            log(
                f"ingest: {n_main} batches from {args.clients} clients to gunicorn "
                f"{args.workers}x{args.threads} (gthread)"
            )
            ingest_baseline.settle()
            raw = env.tmp / "ingest-pyspy.txt"
            # The first half without py-spy (its sampling costs the workers CPU), for the
            # CPU split; the second half sampled.
            half = n_main // 2
            cpu_before = _cpu_seconds(server.worker_pids()), _pg_cpu_seconds()
            samples, seconds = _batches(pool, list(range(half)), args.clients, server.port, key)
            cpu = {
                "web_ms_per_batch": (_cpu_seconds(server.worker_pids()) - cpu_before[0])
                / half
                * 1000,
                "postgres_ms_per_batch": (_pg_cpu_seconds() - cpu_before[1]) / half * 1000,
                "batches": half,
            }
            log(
                f"ingest: CPU per 1,000-event batch: web workers {cpu['web_ms_per_batch']:.0f} ms, "
                f"PostgreSQL backends {cpu['postgres_ms_per_batch']:.0f} ms"
            )
            with pyspy_profile.recording(server.proc.pid, raw) as recording:
                more, more_seconds = _batches(
                    pool, list(range(half, n_main)), args.clients, server.port, key
                )
            samples, seconds = samples + more, seconds + more_seconds
            if recording:
                spy = {
                    "requests": pyspy_profile.summary(
                        raw, top=60, within="django/core/handlers/wsgi.py"
                    ),
                    "all": pyspy_profile.summary(raw, top=15),
                }
            main = _summary(samples, seconds)
            check(
                ingest_baseline.stored(run_id) == args.events,
                f"ledger: {ingest_baseline.stored(run_id)} of {args.events}",
            )
            log(
                f"ingest: {main['events']:,} events in {main['seconds']:.2f}s = "
                f"{main['eps']:,.0f} events/s ({main['eps'] / copy['all']:.2f}x COPY)"
            )

        # Single-event requests, one client, one keep-alive connection, sequential.
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        single = _events(args.single, customers, run_id + "s")
        latencies = []
        for event in single[:20]:  # warm the connection and the workers' caches
            _post(conn, json.dumps(dict(event, identifier=event["identifier"] + "w")).encode(), key)
        for event in single:
            body = json.dumps(event).encode()
            started = time.perf_counter()
            status, data = _post(conn, body, key)
            latencies.append((time.perf_counter() - started) * 1000)
            check(status == 202 and data["accepted"] == 1, f"single event: {status} {data}")
        conn.close()

        memory = server.peak_rss()

    ids = [a.pk for a in accounts]
    stored_all, rolled = _stored_and_rolled(ids)
    expected = args.events + args.single + len(single[:20])  # the warm-up events too
    check(stored_all == expected, f"ledger has {stored_all} events, expected {expected}")
    check(rolled == expected, f"rollups count {rolled} events, the ledger {expected}")

    profile = profile_in_process(customers, run_id, key) if args.profile else None
    if profile:
        print(profile, file=sys.stderr)
    if spy:
        log("ingest: py-spy, request work by function (inclusive %):")
        shown = [(f, v) for f, v in spy["requests"]["inclusive"] if v < 97][:22]
        for frame, share in shown:
            log(f"  {share:5.1f}%  {frame}")
        log(
            "ingest: py-spy, own time (%): "
            + ", ".join(f"{frame} {share}" for frame, share in spy["requests"]["self"][:8])
        )
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
            baseline_label="COPY rows/s, ledger + identifiers",
            target=f">= {TARGET_RATIO:g}x COPY",
            met=main["eps"] >= TARGET_RATIO * copy["all"],
            notes=config,
            extra={
                **main,
                "copy_rows_per_second": copy,
                "cpu": cpu,
                "profile": profile,
                "pyspy": spy,
            },
        ),
        Figure(
            name="ingest.copy_rows_per_second_minimal_indexes",
            label="  COPY with only the ledger's primary key",
            value=copy["minimal"],
            unit="/s",
            baseline=copy["all"],
            baseline_label=f"all {copy['indexes']} ledger indexes",
            notes="+ the identifier table's key in both",
            extra={
                "events_only": copy["events_only"],
                "identifiers_only": copy["identifiers_only"],
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
    if args.ledger_rows:
        try:
            figures += scale_stage(env, args)
        except Exception as exc:  # the main figures stand; the runner reports the failure
            raise common.PartlyFailed(f"scale stage: {exc!r}", figures) from exc
    return figures


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (0 for one that is gone)."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _pg_cpu_seconds() -> float:
    """CPU of the PostgreSQL backends connected to this database (the web workers' and
    this process's persistent connections), read from /proc (same machine, as root)."""
    from benchmarks.common import raw_sql

    pids = [
        r[0]
        for r in raw_sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend'"
        )
    ]
    return _cpu_seconds(pids)


def _stored_and_rolled(account_ids: list[int]) -> tuple[int, int]:
    from benchmarks.common import raw_sql

    return raw_sql(
        "SELECT (SELECT count(*) FROM usage_usageevent WHERE account_id = ANY(%s)), "
        "(SELECT coalesce(sum(event_count), 0) FROM usage_usagerollup "
        "WHERE account_id = ANY(%s))",
        [account_ids, account_ids],
    )[0]


def scale_stage(env: environment.Env, args) -> list[Figure]:
    """The ingest rate on the big ledger against the same run's on the small one, with
    random identifiers (a client's UUIDv4s: each new key lands on a random page of the
    identifier index) and with identifiers sharing a prefix (time-ordered ones, such as
    UUIDv7s or ``<client>-<sequence>``: new keys land side by side)."""
    global _BODIES
    from django.db import connections

    from benchmarks.common import raw_sql

    check(args.ledger_events % 2000 == 0, "--ledger-events must be a multiple of 2,000")
    connections.close_all()
    loads = {}
    for label, rows in (("small", args.ledger_small), ("big", args.ledger_rows)):
        with Timer() as t:
            loads[label] = ledger_load.ensure(env.database_url, rows)
        loads[label]["ensure_seconds"] = t.seconds
    databases = {label: load["database"] for label, load in loads.items()}
    kinds = ("random", "ordered")
    # Per database: fresh accounts (customers in this run's emulator), a key, and the
    # batches of each identifier kind, all made before the client processes fork.
    setup, bodies = {}, []
    for label, name in databases.items():
        with ledger_load.using_database(name):
            accounts = [
                fixtures.make_account(name=f"Scale {label} {i}", plan_key=None, env=env)
                for i in range(args.customers)
            ]
            customers = [fixtures.customer_id(a) for a in accounts]
            key = fixtures.ingest_key()
        setup[label] = {"account_ids": [a.pk for a in accounts], "key": key}
        for kind in kinds:
            run_id = f"sc{label}{kind[0]}{int(time.time())}"
            events = _events(2 * args.ledger_events, customers, run_id, random_ids=kind == "random")
            first = len(bodies)
            bodies += [
                json.dumps({"events": events[i : i + 1000]}).encode()
                for i in range(0, len(events), 1000)
            ]
            setup[label][kind] = list(range(first, len(bodies)))
    _BODIES = bodies
    half = args.ledger_events // 1000
    runs = {(label, kind): [[], 0.0] for label in databases for kind in kinds}
    with _pool(args.clients) as pool:
        for part in (0, 1):
            for kind in kinds:
                for label in ("small", "big"):
                    name, own = databases[label], setup[label]
                    url = ledger_load.url_for(env.database_url, name)
                    with ledger_load.using_database(name):
                        ingest_baseline.settle()
                    connections.close_all()
                    with fixtures.gunicorn(
                        env, workers=args.workers, threads=args.threads, database_url=url
                    ) as server:
                        batches = own[kind][part * half : (part + 1) * half]
                        samples, seconds = _batches(
                            pool, batches, args.clients, server.port, own["key"]
                        )
                    runs[(label, kind)][0] += samples
                    runs[(label, kind)][1] += seconds
                    log(
                        f"ingest scale: {label} ledger ({name}), {kind} identifiers: "
                        f"{len(batches)} batches at {len(batches) * 1000 / seconds:,.0f} events/s"
                    )
    results = {}
    for label, name in databases.items():
        with ledger_load.using_database(name):
            stored, rolled = _stored_and_rolled(setup[label]["account_ids"])
            (ledger_rows,) = raw_sql("SELECT count(*) FROM usage_usageevent")[0]
        expected = 2 * 2 * args.ledger_events
        check(stored == expected, f"{name}: stored {stored} of {expected}")
        check(rolled == expected, f"{name}: rollups count {rolled} of {expected}")
        for kind in kinds:
            results[(label, kind)] = {
                **_summary(*runs[(label, kind)]),
                "ledger_rows_after": ledger_rows,
            }
    figures = []
    for kind, what in (("random", "random identifiers"), ("ordered", "prefixed identifiers")):
        big, small = results[("big", kind)], results[("small", kind)]
        log(
            f"ingest scale ({what}): {big['eps']:,.0f} events/s on {args.ledger_rows:,} rows, "
            f"{small['eps']:,.0f} on {args.ledger_small:,} ({big['eps'] / small['eps']:.2f}x)"
        )
        figures.append(
            Figure(
                name="ingest.events_per_second_big_ledger"
                + ("" if kind == "random" else "_prefixed_ids"),
                label=f"Ingest on a {args.ledger_rows:,}-event ledger, {what} (events/s)",
                value=big["eps"],
                unit="/s",
                baseline=small["eps"],
                baseline_label=f"on {args.ledger_small:,}",
                target=f">= {TARGET_SCALE_RATIO:g}x" if kind == "random" else "",
                met=big["eps"] >= TARGET_SCALE_RATIO * small["eps"] if kind == "random" else None,
                notes=(
                    "32 random hex digits (UUIDv4-like); alternating segments"
                    if kind == "random"
                    else "<run>_<hex>: new keys side by side (UUIDv7-like); alternating segments"
                ),
                extra={"big": big, "small": small, "loads": loads},
            )
        )
    return figures


def main() -> int:
    return environment.main_for(sys.modules[__name__])


if __name__ == "__main__":
    raise SystemExit(main())
