"""Reporting efficiency: Stripe API calls per 1,000,000 events ingested at a steady rate,
and the reporting pass's throughput against the emulator.

Steady load is modelled on a simulated clock in ticks of one beat interval
(``USAGE_REPORT_INTERVAL_SECONDS``, 10 s): each tick ingests ``rate x interval`` events
through the ingest service (spread over ``--customers`` customers x 3 meters, timestamps
inside that tick, received at the tick's end), then one reporting pass runs "at" the
tick's end (``usage_reports_claim`` + ``usage_reports_send_due``, what the beat task's
``usage_report_pass`` runs) in a separate worker process with the production limiter
(Redis). The simulated clock lets the batching rules (a pair reports at
``USAGE_REPORT_BATCH_MIN_EVENTS`` unreported events or after
``USAGE_REPORT_BATCH_MAX_WAIT_SECONDS``) play out over minutes of load in seconds; all
times stay in the recent past, so Stripe's windows hold. After the ticks, one ``flush``
pass drains what is left (not counted as steady state), and Stripe's event summaries
must then equal the ledger for every customer and meter.

Calls are counted twice, by a counting wrapper around the Stripe client in the worker
and in the emulator's request log; both must agree. Calls per 1,000,000 events is the
steady state's calls per event claimed, scaled (``--events`` below 1,000,000 is
extrapolated, and the table says so).

The same load runs once per ``--transports`` (default ``v1,v2_stream``, new customers
each time): ``v1`` is one ``POST /v1/billing/meter_events`` per report, ``v2_stream``
(``USAGE_REPORT_TRANSPORT``, :mod:`usage.services.report_stream`) up to 100 reports per
``POST /v2/billing/meter_event_stream`` plus a ``POST /v2/billing/meter_event_session``
per worker every 15 minutes, both counted as Stripe calls. v1 is the v2 figure's
same-run baseline. The emulator's stream counts asynchronously: its queue is drained
before the totals are compared.

    python -m benchmarks.bench_reporting --events 1000000 --rate 2000 --customers 50
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from benchmarks import common, environment, fixtures
from benchmarks.common import Figure, Timer, check, log

METERS = ("api_calls", "data_transfer_gb", "transactions")
TARGET_PER_1000 = 1.0
TARGET_V2_PER_MILLION = 100.0  # issue 19: <= 100 Stripe calls per 1,000,000 events
# The Stripe calls a reporting worker makes, as the emulator logs them.
CALL_PATHS = {
    "v1_calls": "/v1/billing/meter_events",
    "stream_calls": "/v2/billing/meter_event_stream",
    "session_calls": "/v2/billing/meter_event_session",
}


def add_arguments(parser) -> None:
    parser.add_argument("--events", type=int, default=400_000, help="events ingested in all")
    parser.add_argument("--rate", type=int, default=2_000, help="modelled events per second")
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--interval", type=float, default=None, help="seconds between passes")
    parser.add_argument(
        "--transports", default="v1,v2_stream", help="USAGE_REPORT_TRANSPORT values to run"
    )
    parser.add_argument("--worker", action="store_true", help=argparse_hidden())


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


# -- the worker process ------------------------------------------------------------------
def worker() -> int:
    """Reads ``pass <ISO time> <flush 0|1>`` lines on stdin, runs one reporting pass
    each at that time, and answers a JSON line."""
    import django

    django.setup()
    from django.db import connection

    from billing.stripe_api import stripe_client
    from usage.services.limiter import report_limiter
    from usage.services.report_claim import usage_reports_claim
    from usage.services.reporting import report_sender

    client = stripe_client(max_network_retries=0)
    calls = dict.fromkeys(CALL_PATHS, 0)

    def counting(service, kind):
        original = service.create

        def create(*a, **kw):
            calls[kind] += 1
            return original(*a, **kw)

        service.create = create

    counting(client.v1.billing.meter_events, "v1_calls")
    counting(client.v2.billing.meter_event_stream, "stream_calls")
    counting(client.v2.billing.meter_event_session, "session_calls")
    send = report_sender()  # USAGE_REPORT_TRANSPORT, from this process's environment
    queries = {"n": 0}

    def count(execute, sql, params, many, context):
        queries["n"] += 1
        return execute(sql, params, many, context)

    connection.execute_wrappers.append(count)
    limiter = report_limiter()
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] != "pass":
            break
        now, flush = datetime.fromisoformat(words[1]), words[2] == "1"
        before, queries["n"] = dict(calls), 0
        with Timer() as claim:
            result = usage_reports_claim(now=now, flush=flush)
        with Timer() as sending:
            result = send(now=now, client=client, limiter=limiter, result=result)
        made = {kind: calls[kind] - before[kind] for kind in calls}
        print(
            json.dumps(
                {
                    **made,
                    "claimed": result.claimed_events,
                    "reports": result.reports_created,
                    "sent": result.sent,
                    "retried": result.retried,
                    "failed": result.failed,
                    "too_late": len(result.too_late),
                    "calls": sum(made.values()),
                    "queries": queries["n"],
                    "claim_seconds": claim.seconds,
                    "send_seconds": sending.seconds,
                    "flush": flush,
                }
            ),
            flush=True,
        )
    return 0


# -- the benchmark -----------------------------------------------------------------------
def _summaries_total(client, *, meter_stripe_id: str, customer: str, start, end) -> int:
    from decimal import Decimal

    page = client.v1.billing.meters.event_summaries.list(
        meter_stripe_id,
        {
            "customer": customer,
            "start_time": int(start.timestamp()),
            "end_time": int(end.timestamp()),
        },
    )
    return int(sum((Decimal(str(s.aggregated_value)) for s in page.auto_paging_iter()), Decimal(0)))


def _emulator_calls(env) -> dict[str, int]:
    return {kind: env.emulator_requests("POST", path) for kind, path in CALL_PATHS.items()}


def _run_ticks(
    env, *, customers, rng, base, ticks: int, per_tick: int, interval: float, transport: str
):
    """Per tick: ingest its events, then one pass at the tick's end; then one flush pass.
    Returns the passes' answers (the last is the flush), the seconds spent ingesting and
    the worker's peak RSS."""
    from django.db import connections

    from usage.services.ingest import usage_events_ingest

    connections.close_all()
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_reporting", "--worker"],
        cwd=common.ROOT,
        env={**os.environ, "USAGE_REPORT_TRANSPORT": transport},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    passes = []
    ingest_seconds = 0.0

    def one_pass(now: datetime, flush: bool) -> dict:
        connections.close_all()
        calls_before = _emulator_calls(env)
        proc.stdin.write(f"pass {now.isoformat()} {int(flush)}\n")
        proc.stdin.flush()
        answer = json.loads(proc.stdout.readline())
        calls_after = _emulator_calls(env)
        answer["emulator_calls"] = sum(calls_after[k] - calls_before[k] for k in CALL_PATHS)
        return answer

    try:
        for tick in range(ticks):
            start = base + timedelta(seconds=tick * interval)
            end = start + timedelta(seconds=interval)
            events = [
                {
                    "event_name": METERS[i % len(METERS)],
                    "customer": customers[rng.randrange(len(customers))],
                    "value": rng.randint(1, 20),
                    "timestamp": int(
                        (start + timedelta(seconds=rng.random() * interval)).timestamp()
                    ),
                    "identifier": f"rep-{transport}-{tick}-{i}",
                }
                for i in range(per_tick)
            ]
            with Timer() as t:
                for first in range(0, per_tick, 1000):
                    batch = events[first : first + 1000]
                    result = usage_events_ingest(events=batch, now=end)
                    check(
                        result.accepted == len(batch), f"ingest: {result.as_dict()['rejected'][:2]}"
                    )
            ingest_seconds += t.seconds
            answer = one_pass(end, flush=False)
            passes.append(answer)
            if answer["claimed"] or tick == ticks - 1 or tick % 10 == 0:
                log(
                    f"reporting {transport}: tick {tick + 1}/{ticks}: "
                    f"claimed {answer['claimed']:,} into "
                    f"{answer['reports']} reports, {answer['calls']} calls, "
                    f"{answer['queries']:,} queries, {answer['claim_seconds']:.2f}s + "
                    f"{answer['send_seconds']:.2f}s"
                )
        drain = one_pass(base + timedelta(seconds=ticks * interval + 1), flush=True)
        log(
            f"reporting {transport}: flush pass: claimed {drain['claimed']:,}, "
            f"{drain['calls']} calls"
        )
        passes.append(drain)
        peak = common.proc_status(proc.pid)["VmHWM"]
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return passes, ingest_seconds, peak


def _measure(env, args, *, transport: str, interval: float, per_tick: int, ticks: int) -> dict:
    """One transport under the load: new customers, the ticks, the checks; the steady
    state's figures."""
    from billing.models import Meter
    from billing.stripe_api import stripe_client
    from stripe_emulator.testing import control
    from usage.selectors.rollups import rollup_value

    accounts = [
        fixtures.make_account(name=f"Reporting {transport} {i}", plan_key="starter", env=env)
        for i in range(args.customers)
    ]
    customers = [fixtures.customer_id(a) for a in accounts]
    rng = random.Random(11)
    # The simulated clock ends a minute before the real one.
    base = (datetime.now(UTC) - timedelta(seconds=ticks * interval + 60)).replace(microsecond=0)
    pending = common.raw_sql("SELECT count(*) FROM usage_usageevent WHERE report_id IS NULL")[0][0]
    passes, ingest_seconds, peak = _run_ticks(
        env,
        customers=customers,
        rng=rng,
        base=base,
        ticks=ticks,
        per_tick=per_tick,
        interval=interval,
        transport=transport,
    )
    steady, drain = passes[:-1], passes[-1]
    claimed_all = sum(p["claimed"] for p in passes)
    calls_all = sum(p["calls"] for p in passes)
    check(
        claimed_all == args.events + pending,
        f"passes claimed {claimed_all} events; {args.events} ingested, {pending} were pending",
    )
    check(
        calls_all == sum(p["emulator_calls"] for p in passes),
        f"calls: worker {calls_all}, emulator {sum(p['emulator_calls'] for p in passes)}",
    )
    if transport == "v1":  # one report a call
        check(calls_all == sum(p["sent"] for p in passes), f"v1 calls {calls_all} != reports")
    else:  # every report through the stream, none through the fallback
        check(sum(p["v1_calls"] for p in passes) == 0, "v2 fell back to v1 during the run")
    check(all(p["failed"] == 0 and p["retried"] == 0 for p in passes), f"failures: {passes}")
    unreported = common.raw_sql(
        "SELECT count(*) FROM usage_usageevent WHERE report_id IS NULL AND account_id = ANY(%s)",
        [[a.pk for a in accounts]],
    )[0][0]
    check(unreported == 0, f"{unreported} events were left unreported")
    # The stream counts after answering: apply what the emulator still holds.
    control(env.emulator_url, "/_emulator/meter_event_stream/drain", {})
    # What Stripe (the emulator) aggregated equals the ledger, per customer and meter.
    client = stripe_client()
    lo = (base - timedelta(hours=1)).replace(minute=0, second=0)
    hi = (datetime.now(UTC) + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    for account, customer in zip(accounts, customers, strict=True):
        for meter in Meter.objects.filter(event_name__in=METERS):
            ours = rollup_value(account_id=account.pk, meter=meter, start=lo, end=hi)
            theirs = _summaries_total(
                client, meter_stripe_id=meter.stripe_id, customer=customer, start=lo, end=hi
            )
            check(ours == theirs, f"{customer} {meter.event_name}: ledger {ours}, Stripe {theirs}")

    claimed = sum(p["claimed"] for p in steady)
    calls = sum(p["calls"] for p in steady)
    check(claimed > 0 and calls > 0, f"no steady-state reports in {ticks} ticks: add ticks")
    working = [p for p in steady if p["claimed"]]
    pass_seconds = sum(p["claim_seconds"] + p["send_seconds"] for p in working)
    return {
        "per_million": calls / claimed * 1_000_000,
        "events_per_second": claimed / pass_seconds if pass_seconds else 0.0,
        "peak": peak,
        "extra": {
            "events_ingested": args.events,
            "events_claimed_steady": claimed,
            "calls_steady": calls,
            **{kind: sum(p[kind] for p in steady) for kind in CALL_PATHS},
            "reports_steady": sum(p["reports"] for p in steady),
            "calls_flush": drain["calls"],
            "events_flush": drain["claimed"],
            "events_per_call": claimed / calls,
            "reports_per_call": sum(p["reports"] for p in steady) / calls,
        },
        "throughput_extra": {
            "pass_seconds_total": pass_seconds,
            "claim_seconds_total": sum(p["claim_seconds"] for p in working),
            "send_seconds_total": sum(p["send_seconds"] for p in working),
            "idle_pass_seconds_max": max(
                (p["claim_seconds"] + p["send_seconds"] for p in steady if not p["claimed"]),
                default=0.0,
            ),
            "ingest_seconds_total": ingest_seconds,
            "passes": passes,
        },
        "queries_per_pass": sum(p["queries"] for p in working) / max(1, len(working)),
        "working": len(working),
        "steady": len(steady),
    }


def run(env: environment.Env, args) -> list[Figure]:
    from django.conf import settings

    interval = args.interval or settings.USAGE_REPORT_INTERVAL_SECONDS
    per_tick = int(args.rate * interval)
    check(per_tick > 0 and args.events % per_tick == 0, "--events must be ticks x rate x interval")
    ticks = args.events // per_tick
    min_events = getattr(settings, "USAGE_REPORT_BATCH_MIN_EVENTS", 0)
    max_wait = getattr(settings, "USAGE_REPORT_BATCH_MAX_WAIT_SECONDS", 0)
    pairs = args.customers * len(METERS)
    transports = [t.strip() for t in args.transports.split(",") if t.strip()]
    check(set(transports) <= {"v1", "v2_stream"}, f"--transports: {transports}")
    log(
        f"reporting: {ticks} ticks of {interval:g}s at {args.rate:,} events/s "
        f"({per_tick:,} events per pass), {args.customers} customers x {len(METERS)} meters; "
        f"batching: {min_events:,} events or {max_wait}s; transports {', '.join(transports)}"
    )
    measured = {
        transport: _measure(
            env, args, transport=transport, interval=interval, per_tick=per_tick, ticks=ticks
        )
        for transport in transports
    }
    extrapolated = args.events < 1_000_000
    load = (
        f"{args.rate:,} events/s over {pairs} customer-meter pairs, a pass per "
        f"{interval:g}s, batches of {min_events:,} or {max_wait}s"
    )
    common_extra = {
        "ticks": ticks,
        "pairs": pairs,
        "rate": args.rate,
        "interval_seconds": interval,
        "batch_min_events": min_events,
        "batch_max_wait_seconds": max_wait,
        "extrapolated": extrapolated,
    }

    def extrapolation(m) -> str:
        claimed = m["extra"]["events_claimed_steady"]
        return f"; extrapolated from {claimed:,} events" if extrapolated else ""

    figures = []
    v1, v2 = measured.get("v1"), measured.get("v2_stream")
    if v1:
        figures.append(
            Figure(
                name="reporting.calls_per_million_events",
                label="Stripe calls per 1,000,000 events (v1)",
                value=v1["per_million"],
                unit="",
                target=f"<= {TARGET_PER_1000 * 1000:,.0f} (1 per 1,000)",
                met=v1["per_million"] <= TARGET_PER_1000 * 1000,
                notes=load + extrapolation(v1),
                extra={**v1["extra"], **common_extra},
            )
        )
    if v2:
        figures.append(
            Figure(
                name="reporting.v2_calls_per_million_events",
                label="Stripe calls per 1,000,000 events (v2 stream)",
                value=v2["per_million"],
                unit="",
                baseline=v1["per_million"] if v1 else None,
                baseline_label="v1, same load",
                target=f"<= {TARGET_V2_PER_MILLION:,.0f}",
                met=v2["per_million"] <= TARGET_V2_PER_MILLION,
                notes=(
                    f"{load}; up to 100 reports a stream call, session calls counted"
                    + extrapolation(v2)
                ),
                extra={**v2["extra"], **common_extra},
            )
        )
    for transport, m in measured.items():
        suffix = "" if transport == "v1" else "_v2"
        figures.append(
            Figure(
                name=f"reporting.events_per_second{suffix}",
                label=f"Reporting pass throughput, {transport} (events/s)",
                value=m["events_per_second"],
                unit="/s",
                baseline=v1["events_per_second"] if v1 and transport != "v1" else None,
                baseline_label="v1" if v1 and transport != "v1" else "",
                notes=(
                    f"passes that reported: {m['working']} of {m['steady']}, "
                    f"{m['queries_per_pass']:,.0f} queries each; "
                    f"limiter {settings.USAGE_REPORT_MAX_CALLS_PER_SECOND:g} calls/s (Redis)"
                ),
                extra=m["throughput_extra"],
            )
        )
    figures.append(
        Figure(
            name="reporting.worker_peak_rss_mb",
            label="Reporting worker peak RSS",
            value=max(m["peak"] for m in measured.values()) / (1024 * 1024),
            unit="MB",
        )
    )
    return figures


def main() -> int:
    if "--worker" in sys.argv[1:]:
        return worker()
    return environment.main_for(sys.modules[__name__])


if __name__ == "__main__":
    raise SystemExit(main())
