"""Projection and alert sweep: accounts per second through the beat task's sweep,
``usage.services.alerts.alerts_evaluate_all``, in two figures.

One template account is subscribed to Pro (10,000 API calls included) through the
emulator on a test clock, so its period started 10 days ago; ``--accounts`` clones of
it (account, dj-stripe customer and subscription rows) are made in SQL with their two
default rules (80% and 100% of the allowance), and each gets hourly API-call rollups
for the period so far: 99% of them end below 80% of the allowance, 0.5% between 80%
and 100% (one alert each), 0.5% above 100% (two alerts each).

- **Full sweep**: the first sweep, in which no account has a watermark yet, so every
  one is evaluated (state, usage, summary, rules, budgets); the alerts it sends (stored
  and in the outbox) must be exactly the expected ones.
- **Steady state**: after one settling sweep (the alerted accounts' new deliveries),
  ``--changed-percent`` (default 5) % of the accounts get one more call in their newest
  rollup hour (as ingestion would write it; the rollup triggers record it), and one
  sweep is timed: those accounts are evaluated, the others skipped by their watermark
  (``usage.services.alert_sweep``). Its same-run baseline is the full sweep's rate.

The steady state is always profiled (cProfile, cheap); the full sweep when asked or when
it misses its target. The top entries of each profile (SQL by time, then functions by
cumulative time) go into the results JSON (``profile_top``), the whole text into
``profile``.

    python -m benchmarks.bench_sweep --accounts 10000
"""

from __future__ import annotations

import sys

from benchmarks import common, environment, fixtures
from benchmarks.common import Figure, Timer, check, log

TARGET_PER_SECOND = 2000
STEADY_TARGET_PER_SECOND = 5000
PERIOD_DAYS_SO_FAR = 10


def add_arguments(parser) -> None:
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument(
        "--profile", action="store_true", help="profile a full sweep (always when missed)"
    )
    parser.add_argument(
        "--changed-percent",
        type=int,
        default=5,
        help="share of the accounts given new usage before the steady-state sweep",
    )


def _columns(table: str) -> list[str]:
    rows = common.raw_sql(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
        "AND column_name <> 'djstripe_id' ORDER BY ordinal_position",
        [table],
    )
    return [r[0] for r in rows]


def _clone(template, n: int, allowance: int) -> dict[str, int]:
    """n copies of the template account with usage; returns expected alert counts."""
    from billing.mirror.subscriptions import subscription_state_for_account

    customer = fixtures.customer_id(template)
    state = subscription_state_for_account(account=template)
    check(state is not None, "template account has no subscription state")
    # Every column of the template account (so that new columns keep their values),
    # with a name, e-mail and creation time of its own.
    cols = [c for c in _columns("billing_account") if c != "id"]
    select = [
        {
            "name": "'Sweep ' || n",
            "billing_email": "'sweep' || n || '@bench.test'",
            "created_at": "now()",
        }.get(c, f"t.{c}")
        for c in cols
    ]
    common.raw_sql(
        f"INSERT INTO billing_account ({', '.join(cols)}) SELECT {', '.join(select)} "
        "FROM billing_account t, generate_series(1, %s) n WHERE t.id = %s",
        [n, template.pk],
        fetch=False,
    )
    cols = _columns("djstripe_customer")
    select = [{"id": "c.id || '_' || a.id", "subscriber_id": "a.id"}.get(c, f"c.{c}") for c in cols]
    common.raw_sql(
        f"INSERT INTO djstripe_customer ({', '.join(cols)}) SELECT {', '.join(select)} "
        "FROM djstripe_customer c, billing_account a WHERE c.id = %s AND a.name LIKE 'Sweep %%'",
        [customer],
        fetch=False,
    )
    cols = _columns("djstripe_subscription")
    select = [
        {
            "id": "s.id || '_' || a.id",
            "customer_id": "s.customer_id || '_' || a.id",
            "stripe_data": "jsonb_set(s.stripe_data, '{customer}', "
            "to_jsonb(s.customer_id || '_' || a.id))",
        }.get(c, f"s.{c}")
        for c in cols
    ]
    common.raw_sql(
        f"INSERT INTO djstripe_subscription ({', '.join(cols)}) SELECT {', '.join(select)} "
        "FROM djstripe_subscription s, billing_account a "
        "WHERE s.id = %s AND a.name LIKE 'Sweep %%'",
        [state.subscription_id],
        fetch=False,
    )
    # Hourly rollups from the first whole hour of the period to the current hour; the
    # per-hour count sets where each account ends: under 80%, 80-100%, over 100%.
    hours = common.raw_sql(
        "SELECT count(*) FROM generate_series(date_trunc('hour', %s::timestamptz) "
        "+ interval '1 hour', date_trunc('hour', now()), interval '1 hour')",
        [state.period_start],
    )[0][0]
    per_hour = {
        "under": allowance * 50 // 100 // hours + 1,
        "one": -(-allowance * 90 // 100 // hours),
        "two": -(-allowance * 120 // 100 // hours),
    }
    check(
        per_hour["under"] * hours < allowance * 0.8
        and allowance * 0.8 <= per_hour["one"] * hours < allowance
        and per_hour["two"] * hours >= allowance,
        f"rollup shape: {per_hour} over {hours} hours",
    )
    common.raw_sql("SET TIME ZONE 'UTC'", fetch=False)
    common.raw_sql(
        """
        INSERT INTO usage_usagerollup
            (account_id, meter_id, hour, sum_value, event_count, last_value, last_timestamp,
             last_event_id)
        SELECT a.id, m.id, h, c, c, 1, h, 0
        FROM billing_account a
        CROSS JOIN (SELECT id FROM billing_meter WHERE event_name = 'api_calls') m
        CROSS JOIN LATERAL (SELECT CASE WHEN a.id %% 200 = 0 THEN %s WHEN a.id %% 200 = 1
                                        THEN %s ELSE %s END AS c) k
        CROSS JOIN generate_series(date_trunc('hour', %s::timestamptz) + interval '1 hour',
                                   date_trunc('hour', now()), interval '1 hour') h
        WHERE a.name LIKE 'Sweep %%'
        """,
        [per_hour["two"], per_hour["one"], per_hour["under"], state.period_start],
        fetch=False,
    )
    # The default rules, as the first evaluation of each account would have made them.
    common.raw_sql(
        """
        INSERT INTO usage_alertrule
            (account_id, kind, meter_id, threshold_percent, amount, currency, is_default,
             created_at)
        SELECT a.id, 'usage_share', m.id, p, NULL, '', true, now()
        FROM billing_account a
        CROSS JOIN (SELECT id FROM billing_meter WHERE event_name = 'api_calls') m
        CROSS JOIN (VALUES (80), (100)) AS shares(p)
        WHERE a.name LIKE 'Sweep %%'
        """,
        fetch=False,
    )
    ids = [
        r[0] for r in common.raw_sql("SELECT id FROM billing_account WHERE name LIKE 'Sweep %%'")
    ]
    return {
        "hours": hours,
        "one": sum(1 for i in ids if i % 200 == 1),
        "two": sum(1 for i in ids if i % 200 == 0),
        "rollups": hours * len(ids),
    }


def profile_sweep(*, skip_unchanged: bool) -> tuple[str, int, list[str]]:
    """cProfile of one whole sweep, with the SQL statements that took the most time (by
    their first 80 characters). Returns the text, how many alerts it sent, and the top
    entries (SQL and functions by cumulative time) for the results JSON."""
    import cProfile
    import io
    import pstats
    import time

    from django.db import connection

    from billing.models import Account
    from usage.services.alerts import alerts_evaluate_all

    accounts = Account.objects.filter(djstripe_customers__isnull=False).distinct().count()
    sql: dict[str, list] = {}

    def timed(execute, text, params, many, context):
        started = time.perf_counter()
        try:
            return execute(text, params, many, context)
        finally:
            entry = sql.setdefault(" ".join(text.split())[:80], [0, 0.0])
            entry[0] += 1
            entry[1] += time.perf_counter() - started

    profiler = cProfile.Profile()
    with connection.execute_wrapper(timed), Timer() as t:
        sent = profiler.runcall(alerts_evaluate_all, skip_unchanged=skip_unchanged)
    out = io.StringIO()
    total_sql = sum(s for _, s in sql.values())
    head = (
        f"{'steady-state' if skip_unchanged else 'full'} sweep: {accounts} accounts in "
        f"{t.seconds:.1f}s under cProfile ({t.seconds / accounts * 1000:.2f} ms each), SQL "
        f"round trips {total_sql:.1f}s in {sum(c for c, _ in sql.values())} queries"
    )
    out.write(head + "\n")
    top = [head]
    for text, (count, seconds) in sorted(sql.items(), key=lambda kv: -kv[1][1])[:8]:
        out.write(f"  {seconds:6.2f}s {count:6d}x {text}\n")
        top.append(f"SQL {seconds:.2f}s {count}x {text}")
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(r"(usage|billing|dashboards)/", 25)
    stats.sort_stats("tottime").print_stats(12)
    entries = []
    for (path, line, name), (_, calls, _, cumulative, _) in stats.stats.items():
        if "/usage/" in path or "/billing/" in path:
            where = "/".join(path.rsplit("/", 2)[-2:])
            entries.append((cumulative, calls, f"{where}:{line} {name}"))
    entries = sorted(entries, reverse=True)[:12]
    top += [f"{cumulative:.2f}s {calls}x {where}" for cumulative, calls, where in entries]
    return out.getvalue(), sent, top


def _touch_usage(percent: int) -> int:
    """One more call in the newest hour of ``percent``% of the clones (as ingestion
    would add it: the rollup row updated, which the triggers record); returns how many."""
    return common.raw_sql(
        "WITH touched AS (UPDATE usage_usagerollup r SET sum_value = sum_value + 1, "
        "event_count = event_count + 1 FROM billing_account a WHERE a.id = r.account_id "
        "AND a.name LIKE 'Sweep %%' AND r.account_id %% 100 < %s "
        "AND r.hour = (SELECT max(hour) FROM usage_usagerollup) RETURNING r.account_id) "
        "SELECT count(DISTINCT account_id) FROM touched",
        [percent],
    )[0][0]


def run(env: environment.Env, args) -> list[Figure]:
    from django.core import mail
    from django.db import connection

    from billing.models import Account
    from usage.models import AlertDelivery, AlertRule
    from usage.services.alerts import SweepStats, alerts_evaluate_all

    template = fixtures.make_account(
        name="Template for the sweep",
        plan_key="pro",
        env=env,
        period_started_days_ago=PERIOD_DAYS_SO_FAR,
    )
    allowance = 10_000
    with Timer() as t:
        shape = _clone(template, args.accounts, allowance)
        common.raw_sql("VACUUM (ANALYZE)", fetch=False)
    log(f"sweep: {args.accounts:,} accounts with {shape['rollups']:,} rollups in {t.seconds:.1f}s")
    evaluated = Account.objects.filter(djstripe_customers__isnull=False).distinct().count()
    mail.outbox = []

    queries = 0

    def count(execute, sql, params, many, context):
        nonlocal queries
        queries += 1
        return execute(sql, params, many, context)

    # 1. The full sweep: every account evaluated (none has a watermark yet), the
    # crossing ones alerted.
    log(f"sweep: full sweep of {evaluated:,} accounts")
    full_stats = SweepStats()
    with connection.execute_wrapper(count), Timer() as t:
        sent = alerts_evaluate_all(stats=full_stats)
    seconds = t.seconds
    rules = AlertRule.objects.filter(account__name__startswith="Sweep ").count()
    deliveries = AlertDelivery.objects.filter(account__name__startswith="Sweep ").count()
    expected = shape["one"] + 2 * shape["two"]
    check(full_stats.evaluated == evaluated, f"full sweep evaluated {full_stats}")
    check(rules == 2 * args.accounts, f"{rules} rules, expected {2 * args.accounts}")
    check(
        deliveries == expected == sent,
        f"alerts: {deliveries} stored, {sent} sent, {expected} expected",
    )
    check(len(mail.outbox) == sent, f"{len(mail.outbox)} emails for {sent} alerts")
    rate, queries_full = evaluated / seconds, queries
    log(
        f"sweep: {evaluated:,} accounts in {seconds:.1f}s = {rate:,.0f}/s, "
        f"{queries / evaluated:.1f} queries each"
    )

    # 2. Steady state: the accounts that alerted are evaluated once more (their new
    # deliveries), then CHANGED_PERCENT% of the accounts get new usage and are swept.
    settle = SweepStats()
    check(alerts_evaluate_all(stats=settle) == 0, "the settling sweep sent alerts")
    changed = _touch_usage(args.changed_percent)
    steady_stats, queries = SweepStats(), 0
    with connection.execute_wrapper(count), Timer() as t:
        sent_steady = alerts_evaluate_all(stats=steady_stats)
    steady_seconds = t.seconds
    check(sent_steady == 0, f"the steady-state sweep sent {sent_steady} alerts")
    check(
        steady_stats.evaluated == changed and steady_stats.accounts == evaluated,
        f"steady state: {steady_stats}, {changed} accounts with new usage",
    )
    steady_rate = evaluated / steady_seconds
    log(
        f"sweep: steady state ({changed:,} of {evaluated:,} accounts with new usage) in "
        f"{steady_seconds:.2f}s = {steady_rate:,.0f}/s, {queries} queries"
    )

    # 3. Profiles: the steady state always (cheap), the full sweep when asked or missed.
    _touch_usage(args.changed_percent)
    steady_profile, again, steady_top = profile_sweep(skip_unchanged=True)
    check(again == 0, f"a profiled steady-state sweep sent {again} alerts")
    full_profile, full_top = None, []
    if args.profile or rate < TARGET_PER_SECOND:
        log("sweep: profiling a full sweep")
        full_profile, again, full_top = profile_sweep(skip_unchanged=False)
        check(again == 0, f"a second full sweep sent {again} alerts again")
    print(steady_profile, full_profile or "", sep="\n", file=sys.stderr)
    return [
        Figure(
            name="sweep.accounts_per_second",
            label="Alert sweep, full (accounts/s)",
            value=rate,
            unit="/s",
            target=f">= {TARGET_PER_SECOND:,}/s",
            met=rate >= TARGET_PER_SECOND,
            notes="usage.services.alerts.alerts_evaluate_all, in-process: every account "
            "evaluated (no watermark yet), the crossing ones alerted",
            extra={
                "accounts": evaluated,
                "seconds": seconds,
                "alerts_sent": sent,
                "queries_per_account": queries_full / evaluated,
                "rollups_per_account": shape["hours"],
                "profile_top": full_top,
                "profile": full_profile,
            },
        ),
        Figure(
            name="sweep.steady_state_accounts_per_second",
            label="Alert sweep, steady state (accounts/s)",
            value=steady_rate,
            unit="/s",
            baseline=rate,
            baseline_label="full sweep",
            target=f">= {STEADY_TARGET_PER_SECOND:,}/s",
            met=steady_rate >= STEADY_TARGET_PER_SECOND,
            notes=f"{args.changed_percent}% of the accounts with new usage since the last "
            "sweep; the others skipped by their watermark (usage.services.alert_sweep)",
            extra={
                "accounts": evaluated,
                "changed": changed,
                "changed_percent": args.changed_percent,
                "seconds": steady_seconds,
                "evaluated": steady_stats.evaluated,
                "skipped": steady_stats.skipped,
                "queries": queries,
                "profile_top": steady_top,
                "profile": steady_profile,
            },
        ),
    ]


def main() -> int:
    return environment.main_for(sys.modules[__name__])


if __name__ == "__main__":
    raise SystemExit(main())
