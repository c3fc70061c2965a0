"""Chart JSON at 100,000,000 events in one period: p50/p95 of
``/dashboard/chart/api_calls.json`` (and ``/dashboard/``) served by gunicorn for the
account whose current period holds the big ledger's events, against the same run's
account with 10,000 events in its period, in the same database and server.

The big ledger is :mod:`benchmarks.ledger_load`'s persistent database (loaded once with
``COPY`` into partitions, reused by later runs; the ingest-at-scale stage writes on top
of it): one account's ``api_calls`` events spread over 20 days up to two hours before
the load, with their identifiers and hourly rollups. Each run, in that database:

- the catalog is applied against this run's emulator (the emulator's ids are new each
  run; ``catalog_apply`` finds the prices by lookup key and mirrors them);
- the loaded account's earlier customers (made in earlier runs' emulators) are unlinked,
  and it is subscribed to Pro on a test clock frozen half an hour after its first loaded
  event, so its period starts mid-hour with events on both sides of the start (the
  partial first hour must be split exactly), and holds every later loaded event;
- the current hour gets as many of its events, so far, as an average hour of the load
  (``COPY``), so the partial current hour is as busy as the rest of the period;
- a second account is subscribed the same way and given ``--small`` events over the same
  span (``COPY`` and rollups, as :mod:`benchmarks.bench_dashboard` loads them);
- each gets an owner signed in with a session cookie.

Requests alternate between the two accounts so both see the same machine noise. The
chart's total must equal the events in the period before anything is timed.

    python -m benchmarks.bench_chart_scale --rows 100000000
"""

from __future__ import annotations

import dataclasses
import sys
import time
from datetime import UTC, datetime, timedelta

from benchmarks import bench_dashboard, common, environment, fixtures, ledger_load
from benchmarks.common import Figure, Timer, check, log, percentile

TARGET_P95_MS = bench_dashboard.TARGET_P95_MS
TARGET_RATIO = bench_dashboard.TARGET_RATIO


def add_arguments(parser) -> None:
    parser.add_argument(
        "--rows",
        type=int,
        default=100_000_000,
        help="events in the big account's period (the big ledger's rows; 0: no stage)",
    )
    parser.add_argument("--small", type=int, default=10_000, help="events of the small account")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per URL")


def _subscribe(*, account, env: environment.Env, frozen: datetime):
    """``account`` subscribed to Pro on a test clock frozen at ``frozen`` (this run's
    emulator), its earlier runs' customers unlinked first.

    The customer is made here, not by ``account_ensure_stripe_customer``: that service's
    idempotency key is ``meterdesk-account-<pk>-customer``, and the loaded account keeps its
    pk (1) in its own database while the run database's account 1 has already used that key
    with this emulator for another customer, which Stripe (and the emulator) refuses."""
    from djstripe.models import Customer
    from djstripe.settings import djstripe_settings

    from billing.services.subscriptions import subscription_create
    from billing.stripe_api import api_key, stripe_client

    Customer.objects.filter(subscriber=account).update(
        subscriber=None, date_purged=datetime.now(UTC)
    )
    client = stripe_client()
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": int(frozen.timestamp())})
    remote = client.v1.customers.create(
        {
            "name": account.name,
            "email": account.billing_email,
            "metadata": {djstripe_settings.SUBSCRIBER_CUSTOMER_KEY: str(account.pk)},
            "payment_method": "pm_card_visa",
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
            "test_clock": clock.id,
        }
    )
    customer = Customer.sync_from_stripe_data(remote, api_key=api_key())
    if customer.subscriber_id != account.pk:
        customer.subscriber = account
        customer.save(update_fields=["subscriber"])
    subscription_create(account=account, plan=env.plans["pro"], test_clock=clock.id)


def _prepare(env: environment.Env, args, name: str, run_id: str) -> dict:
    """In the big ledger's database: catalog, both accounts subscribed, the small one's
    events, sign-in cookies; returns {label: (account, events in period, cookie)}."""
    from billing.catalog.spec import load_catalog
    from billing.mirror.subscriptions import subscription_state_for_account
    from billing.models import Account, Meter, Plan
    from billing.services.accounts import account_create
    from billing.services.catalog import catalog_apply

    loaded_start, loaded_end = ledger_load.loaded_period(env.database_url, name)
    frozen = loaded_start + timedelta(minutes=30)
    with ledger_load.using_database(name):
        with Timer() as t:
            catalog_apply(catalog=load_catalog(environment.CATALOG))
        log(f"chart scale: catalog applied to {name} in {t.seconds:.1f}s")
        env_here = dataclasses.replace(env, plans={p.key: p for p in Plan.objects.all()})
        api_calls = Meter.objects.get(event_name=ledger_load.METER)
        (big_id,) = ledger_load.bulk_account_ids_in(name, env.database_url)
        big = Account.objects.get(pk=big_id)
        small = account_create(name=f"Chart small {run_id}", billing_email=f"{run_id}@bench.test")
        accounts = {}
        for label, account in (("small", small), ("big", big)):
            _subscribe(account=account, env=env_here, frozen=frozen)
            state = subscription_state_for_account(account=account)
            check(
                state is not None and state.period_start == frozen < state.period_end,
                f"{label}: period {state and state.period_start} to "
                f"{state and state.period_end}, not from {frozen}",
            )
            check(
                datetime.now(UTC) < state.period_end,
                f"{label}: the period ended {state.period_end}: the load is too old",
            )
            accounts[label] = account
        now = datetime.now(UTC)
        copy_s = bench_dashboard._copy_events(
            account_id=small.pk,
            meter_id=api_calls.pk,
            n=args.small,
            start=frozen,
            end=now - timedelta(minutes=2),
            tag=f"chart-{run_id}",
        )
        # The big account's current hour so far, at the load's average hourly rate.
        hour = now.replace(minute=0, second=0, microsecond=0)
        per_hour = args.rows * 3600 / (loaded_end - loaded_start).total_seconds()
        current = int(per_hour * (now - hour).total_seconds() / 3600)
        if current:
            copy_s += bench_dashboard._copy_events(
                account_id=big.pk,
                meter_id=api_calls.pk,
                n=current,
                start=hour,
                end=now - timedelta(seconds=1),
                tag=f"chart-{run_id}-now",
            )
        roll_s = bench_dashboard._rollups_from_ledger(small.pk)
        with Timer() as t:
            common.raw_sql(
                "INSERT INTO usage_usagerollup (account_id, meter_id, hour, sum_value, "
                "event_count, last_value, last_timestamp, last_event_id) "
                "SELECT account_id, meter_id, %s, sum(value), count(*), 1, max(timestamp), "
                "max(id) FROM usage_usageevent WHERE account_id = %s AND meter_id = %s "
                "AND timestamp >= %s GROUP BY 1, 2 ON CONFLICT (account_id, meter_id, hour) "
                "DO UPDATE SET sum_value = usage_usagerollup.sum_value + EXCLUDED.sum_value, "
                "event_count = usage_usagerollup.event_count + EXCLUDED.event_count, "
                "last_timestamp = EXCLUDED.last_timestamp, last_event_id = EXCLUDED.last_event_id",
                [hour, big.pk, api_calls.pk, hour],
                fetch=False,
            )
        log(
            f"chart scale: small account {args.small:,} and the big one's current hour "
            f"{current:,}: COPY {copy_s:.1f}s, rollups {roll_s + t.seconds:.1f}s"
        )
        common.raw_sql("ANALYZE usage_usagerollup", fetch=False)
        # What each period holds, counted from the ledger (the big account's: the load,
        # less its events before the period's start, plus the current hour's).
        (before,) = common.raw_sql(
            "SELECT count(*) FROM usage_usageevent WHERE account_id = %s AND meter_id = %s "
            "AND timestamp < %s",
            [big.pk, api_calls.pk, frozen],
        )[0]
        counts = {"big": args.rows - before + current, "small": args.small}
        check(0 < before < args.rows, f"big: {before:,} loaded events before the period")
        for label, account in accounts.items():
            (rolled,) = common.raw_sql(
                "SELECT sum(event_count) FROM usage_usagerollup WHERE account_id = %s "
                "AND meter_id = %s",
                [account.pk, api_calls.pk],
            )[0]
            expected = counts[label] + (before if label == "big" else 0)
            check(rolled == expected, f"{label}: rollups count {rolled:,}, not {expected:,}")
        return {
            label: (
                account,
                counts[label],
                fixtures.login_cookie(account, f"chart-{label}-{run_id}"),
            )
            for label, account in accounts.items()
        }


def run(env: environment.Env, args) -> list[Figure]:
    from django.db import connections

    if not args.rows:
        log("chart scale: --rows 0, no stage")
        return []
    connections.close_all()
    with Timer() as t:
        load = ledger_load.ensure(env.database_url, args.rows)
    name = load["database"]
    log(f"chart scale: ledger {name} ready in {t.seconds:.0f}s")
    run_id = f"c{int(time.time())}"
    accounts = _prepare(env, args, name, run_id)
    connections.close_all()
    url = ledger_load.url_for(env.database_url, name)
    with fixtures.gunicorn(env, workers=2, threads=1, database_url=url) as server:
        samples = bench_dashboard.time_pages(server, accounts, requests=args.requests)
    figures = []
    rows = f"{args.rows:,}"
    for kind, what in (("chart", "chart JSON"), ("page", "/dashboard/")):
        small, big = samples[(kind, "small")], samples[(kind, "big")]
        p95_small, p95_big = percentile(small, 95), percentile(big, 95)
        log(f"chart scale: {what} p95 {p95_big:.1f} ms at {rows} events, {p95_small:.1f} small")
        figures.append(
            Figure(
                name=f"chart.{kind}_p95_ms",
                label=f"{what} p95 at {rows} events in one period",
                value=p95_big,
                unit="ms",
                baseline=p95_small,
                baseline_label=f"at {args.small:,}",
                target=f"< {TARGET_P95_MS:g} ms, <= {TARGET_RATIO:g}x",
                met=p95_big < TARGET_P95_MS and p95_big <= TARGET_RATIO * p95_small,
                notes=f"big ledger database {name}; gunicorn 2 workers, one keep-alive client",
                extra={
                    "requests": len(big),
                    "p50_big": percentile(big, 50),
                    "p50_small": percentile(small, 50),
                    "ledger": load,
                },
            )
        )
    return figures


def main() -> int:
    return environment.main_for(sys.modules[__name__])


if __name__ == "__main__":
    sys.exit(main())
