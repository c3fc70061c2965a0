"""Reporting efficiency: Stripe API calls per 1,000,000 events ingested at a steady rate,
and the reporting pass's throughput against the emulator.

Steady load is modelled in ticks of one beat interval (``USAGE_REPORT_INTERVAL_SECONDS``,
10 s): each tick ingests ``rate x interval`` events (through the ingest service, spread
over ``--customers`` customers x 3 meters, timestamps inside that tick's 10 s in the
recent past), then one reporting pass runs (``usage_report_pass``, what the Celery beat
task runs) in a separate worker process with the production limiter (Redis, 100 calls/s
by default). Calls are counted twice: by a counting wrapper around the Stripe client in
the worker, and in the emulator's request log; both must agree. ``--events`` below
1,000,000 is extrapolated linearly (the calls per pass do not depend on the number of
ticks), and the table says so.

    python -m benchmarks.bench_reporting --events 1000000 --rate 2000 --customers 50
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from benchmarks import common
from benchmarks.common import Figure, Timer, check, log

METERS = ("api_calls", "data_transfer_gb", "transactions")
TARGET_PER_1000 = 1.0


def add_arguments(parser) -> None:
    parser.add_argument("--events", type=int, default=100_000, help="events ingested in all")
    parser.add_argument("--rate", type=int, default=2_000, help="modelled events per second")
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--interval", type=float, default=None, help="seconds between passes")
    parser.add_argument(
        "--what-if-ticks",
        type=int,
        default=2,
        help="further ticks with the proposed claim fix applied in the worker (0: none)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse_hidden())


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


# -- the worker process ------------------------------------------------------------------
def worker() -> int:
    """Reads ``pass`` lines on stdin, runs one reporting pass each, answers JSON lines."""
    import django

    django.setup()
    from django.db import connection

    from billing.stripe_api import stripe_client
    from usage.services.limiter import report_limiter
    from usage.services.reporting import usage_reports_claim, usage_reports_send_due

    client = stripe_client(max_network_retries=0)
    service = client.v1.billing.meter_events
    original = service.create
    calls = {"n": 0}

    def counting_create(*a, **kw):
        calls["n"] += 1
        return original(*a, **kw)

    service.create = counting_create
    if "--order-by-fix" in sys.argv:
        # What the proposed one-line fix does: the pairs query in usage_reports_claim,
        # ``.values_list("account_id", "meter_id").distinct()``, inherits the model's
        # ``ordering = ["-id"]``, so its SELECT DISTINCT includes id and returns one
        # "pair" per unreported event. ``.order_by()`` before ``.distinct()`` fixes it;
        # clearing the default ordering here has the same effect on that query (every
        # other UsageEvent query in reporting orders explicitly).
        from usage.models import UsageEvent

        UsageEvent._meta.ordering = []
    queries = {"n": 0}

    def count(execute, sql, params, many, context):
        queries["n"] += 1
        return execute(sql, params, many, context)

    connection.execute_wrappers.append(count)
    limiter = report_limiter()
    for line in sys.stdin:
        if line.strip() != "pass":
            break
        before, queries["n"] = calls["n"], 0
        with Timer() as claim:
            result = usage_reports_claim()
        with Timer() as send:
            result = usage_reports_send_due(client=client, limiter=limiter, result=result)
        print(
            json.dumps(
                {
                    "claimed": result.claimed_events,
                    "reports": result.reports_created,
                    "sent": result.sent,
                    "retried": result.retried,
                    "failed": result.failed,
                    "too_late": len(result.too_late),
                    "calls": calls["n"] - before,
                    "queries": queries["n"],
                    "claim_seconds": claim.seconds,
                    "send_seconds": send.seconds,
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


def _ticks(env, customers, rng, base, ticks, per_tick, interval, *, fixed: bool = False):
    """Per tick: ingest its events, then one pass in the worker. Returns the passes'
    answers, the seconds spent ingesting and the worker's peak RSS."""
    from django.db import connections

    from usage.services.ingest import usage_events_ingest

    connections.close_all()
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_reporting", "--worker"]
        + (["--order-by-fix"] if fixed else []),
        cwd=common.ROOT,
        env=os.environ.copy(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    passes = []
    ingest_seconds = 0.0
    try:
        for tick in ticks:
            start = base + timedelta(seconds=tick * interval)
            events = [
                {
                    "event_name": METERS[i % len(METERS)],
                    "customer": customers[rng.randrange(len(customers))],
                    "value": rng.randint(1, 20),
                    "timestamp": int(
                        (start + timedelta(seconds=rng.random() * interval)).timestamp()
                    ),
                    "identifier": f"rep-{tick}-{i}",
                }
                for i in range(per_tick)
            ]
            with Timer() as t:
                for first in range(0, per_tick, 1000):
                    result = usage_events_ingest(events=events[first : first + 1000])
                    check(result.accepted == len(events[first : first + 1000]), "ingest failed")
            ingest_seconds += t.seconds
            connections.close_all()
            calls_before = env.emulator_requests("POST", "/v1/billing/meter_events")
            proc.stdin.write("pass\n")
            proc.stdin.flush()
            answer = json.loads(proc.stdout.readline())
            answer["emulator_calls"] = (
                env.emulator_requests("POST", "/v1/billing/meter_events") - calls_before
            )
            passes.append(answer)
            log(
                f"reporting: tick {tick + 1}{' (fixed)' if fixed else ''}: claimed "
                f"{answer['claimed']:,} into {answer['reports']} reports, {answer['calls']} "
                f"calls, {answer['queries']:,} queries, claim {answer['claim_seconds']:.2f}s "
                f"+ send {answer['send_seconds']:.2f}s"
            )
        peak = common.proc_status(proc.pid)["VmHWM"]
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return passes, ingest_seconds, peak


def run(env: common.Env, args) -> list[Figure]:
    from django.conf import settings

    from billing.models import Meter
    from billing.stripe_api import stripe_client
    from usage.selectors import ledger_value

    interval = args.interval or settings.USAGE_REPORT_INTERVAL_SECONDS
    per_tick = int(args.rate * interval)
    check(per_tick > 0 and args.events % per_tick == 0, "--events must be ticks x rate x interval")
    ticks = args.events // per_tick
    log(
        f"reporting: {ticks} ticks of {interval:g}s at {args.rate:,} events/s "
        f"({per_tick:,} events per pass), {args.customers} customers x {len(METERS)} meters"
    )
    accounts = [
        common.make_account(name=f"Reporting {i}", plan_key="starter", env=env)
        for i in range(args.customers)
    ]
    customers = [common.customer_id(a) for a in accounts]
    rng = random.Random(11)
    base = datetime.now(UTC) - timedelta(seconds=(ticks + args.what_if_ticks) * interval + 120)

    # Whatever other benchmarks of the run left unreported is claimed by the first pass.
    pending = common.raw_sql("SELECT count(*) FROM usage_usageevent WHERE report_id IS NULL")[0][0]
    passes, ingest_seconds, peak = _ticks(
        env, customers, rng, base, range(ticks), per_tick, interval
    )
    claimed = sum(p["claimed"] for p in passes)
    calls = sum(p["calls"] for p in passes)
    emulator_calls = sum(p["emulator_calls"] for p in passes)
    check(
        claimed == args.events + pending,
        f"passes claimed {claimed} events; {args.events} ingested, {pending} were pending",
    )
    check(calls == emulator_calls, f"client counted {calls} calls, the emulator {emulator_calls}")
    check(all(p["failed"] == 0 and p["retried"] == 0 for p in passes), f"failures: {passes}")
    check(calls == sum(p["sent"] for p in passes), "calls != reports sent")
    unreported = common.raw_sql(
        "SELECT count(*) FROM usage_usageevent WHERE report_id IS NULL AND account_id = ANY(%s)",
        [[a.pk for a in accounts]],
    )[0][0]
    check(unreported == 0, f"{unreported} events were left unreported")
    # What Stripe (the emulator) aggregated equals the ledger, per customer and meter.
    client = stripe_client()
    lo = base - timedelta(hours=1)
    lo = lo.replace(minute=0, second=0, microsecond=0)
    hi = (datetime.now(UTC) + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    for account, customer in zip(accounts, customers, strict=True):
        for meter in Meter.objects.filter(event_name__in=METERS):
            ours = ledger_value(account_id=account.pk, meter=meter, start=lo, end=hi)
            theirs = _summaries_total(
                client, meter_stripe_id=meter.stripe_id, customer=customer, start=lo, end=hi
            )
            check(ours == theirs, f"{customer} {meter.event_name}: ledger {ours}, Stripe {theirs}")

    fixed = []
    if args.what_if_ticks:
        more = range(ticks, ticks + args.what_if_ticks)
        fixed, _, _ = _ticks(env, customers, rng, base, more, per_tick, interval, fixed=True)
        fixed_claimed = sum(p["claimed"] for p in fixed)
        check(fixed_claimed == per_tick * len(more), f"fixed passes claimed {fixed_claimed}")
        check(
            all(p["calls"] == p["emulator_calls"] == p["sent"] for p in fixed),
            f"fixed passes: {fixed}",
        )

    pass_seconds = sum(p["claim_seconds"] + p["send_seconds"] for p in passes)
    per_1000 = calls / claimed * 1000
    pairs = args.customers * len(METERS)
    predicted = 1000 * pairs / per_tick
    extrapolated = "" if args.events >= 1_000_000 else f"extrapolated from {args.events:,} events"
    figures = [
        Figure(
            name="reporting.calls_per_million_events",
            label="Stripe calls per 1,000,000 events",
            value=per_1000 * 1000,
            unit="",
            target=f"<= {TARGET_PER_1000 * 1000:,.0f} (1 per 1,000)",
            met=per_1000 <= TARGET_PER_1000,
            notes=(
                f"{args.rate:,} events/s over {pairs} customer-meter pairs, one pass per "
                f"{interval:g}s; {extrapolated}".rstrip("; ")
            ),
            extra={
                "events": claimed,
                "calls": calls,
                "calls_at_emulator": emulator_calls,
                "passes": len(passes),
                "pairs": pairs,
                "rate": args.rate,
                "interval_seconds": interval,
                "calls_per_1000_events": per_1000,
                "predicted_calls_per_1000_events": predicted,
                "extrapolated": bool(extrapolated),
            },
        ),
        Figure(
            name="reporting.events_per_second",
            label="Reporting pass throughput (events/s)",
            value=claimed / pass_seconds,
            unit="/s",
            notes=(
                f"limiter {settings.USAGE_REPORT_MAX_CALLS_PER_SECOND:g} calls/s (Redis); "
                f"{sum(p['queries'] for p in passes) / len(passes):,.0f} queries per pass"
            ),
            extra={
                "pass_seconds_total": pass_seconds,
                "claim_seconds_total": sum(p["claim_seconds"] for p in passes),
                "send_seconds_total": sum(p["send_seconds"] for p in passes),
                "ingest_seconds_total": ingest_seconds,
                "passes": passes,
            },
        ),
    ]
    if fixed:
        fixed_seconds = sum(p["claim_seconds"] + p["send_seconds"] for p in fixed)
        figures.append(
            Figure(
                name="reporting.events_per_second_with_claim_fix",
                label="  what-if: .order_by() in the claim",
                value=sum(p["claimed"] for p in fixed) / fixed_seconds,
                unit="/s",
                baseline=claimed / pass_seconds,
                baseline_label="as is",
                notes=(
                    f"{len(fixed)} more ticks; "
                    f"{sum(p['queries'] for p in fixed) / len(fixed):,.0f} queries per pass"
                ),
                extra={"passes": fixed},
            )
        )
    figures.append(
        Figure(
            name="reporting.worker_peak_rss_mb",
            label="Reporting worker peak RSS",
            value=peak / (1024 * 1024),
            unit="MB",
        )
    )
    return figures


def main() -> int:
    if "--worker" in sys.argv[1:]:
        return worker()
    return common.main_for(sys.modules[__name__])


if __name__ == "__main__":
    raise SystemExit(main())
