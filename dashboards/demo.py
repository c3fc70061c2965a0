"""The demo: six customer accounts with realistic history, seeded through the real
product (catalog, Stripe customers on test clocks, subscriptions, the ingestion service,
the reporting pass, Stripe's invoices), never by writing fake numbers.

History is replayed week by week: each account's test clock is advanced to the end of
the week, that week's events are ingested and reported as of that moment, and every
period end is crossed with the clock so Stripe (the emulator) invoices it.
"""

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from billing.catalog.spec import load_catalog
from billing.mirror.customers import customer_id_for_account
from billing.models import Account, Membership, Plan
from billing.services.accounts import (
    account_apply_stripe_event,
    account_create,
    account_ensure_stripe_customer,
    membership_add,
)
from billing.services.catalog import catalog_apply
from billing.services.stripe_sync import stripe_sync_everything
from billing.services.subscriptions import subscription_create
from billing.services.test_clocks import test_clock_advance
from billing.services.webhook_endpoints import webhook_endpoint_register
from billing.stripe_api import stripe_client
from usage.services.alerts import alert_rule_create, alerts_evaluate_all
from usage.services.ingest import usage_events_ingest
from usage.services.keys import ingest_key_create
from usage.services.reporting import usage_report_pass

CATALOG = Path(settings.BASE_DIR) / "billing" / "catalog" / "demo.toml"
LOGINS_FILE = Path(settings.VAR_DIR) / "demo-logins.txt"
INGEST_KEY_FILE = Path(settings.VAR_DIR) / "demo-ingest-key.txt"
# Share of a day's usage by UTC hour: quiet nights, busy working hours.
HOURLY = [1, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 8, 7, 8, 8, 8, 7, 6, 5, 4, 3, 2, 2, 1]
WEEKDAY = [1.0, 1.05, 1.1, 1.05, 0.95, 0.45, 0.35]  # Mon..Sun


@dataclass(frozen=True)
class MeterPlan:
    event_name: str
    per_day: float  # units (sum) or events (count) per weekday at the start
    growth: float = 0.0  # daily growth rate
    events_per_day: int | None = None  # for sum meters: how many events carry the units
    last_values: tuple[int, ...] = ()  # for last meters: values over the history


@dataclass(frozen=True)
class DemoAccount:
    slug: str
    name: str
    plan: str
    meters: tuple[MeterPlan, ...]
    fail_last_renewal: bool = False
    extra_rules: tuple[dict, ...] = field(default_factory=tuple)


ACCOUNTS = (
    DemoAccount(
        "acme",
        "Acme Analytics",
        "pro",
        (MeterPlan("api_calls", 240, growth=0.018), MeterPlan("seats", 0, last_values=(4, 5, 6))),
        extra_rules=(
            {"kind": "projected_usage_share", "meter": "api_calls", "threshold_percent": 100},
        ),
    ),
    DemoAccount("bluebird", "Bluebird Logistics", "starter", (MeterPlan("api_calls", 260),)),
    DemoAccount(
        "cobalt",
        "Cobalt Media",
        "growth",
        (MeterPlan("data_transfer_gb", 6, growth=0.01, events_per_day=6),),
    ),
    DemoAccount(
        "delta",
        "Delta Payments",
        "scale",
        (MeterPlan("transactions", 330, growth=0.004),),
        extra_rules=({"kind": "spend", "amount": 20_000},),
    ),
    DemoAccount("evergreen", "Evergreen Health", "bulk", (MeterPlan("api_calls", 420),)),
    DemoAccount(
        "foxtrot",
        "Foxtrot Games",
        "pro",
        (MeterPlan("api_calls", 140), MeterPlan("seats", 0, last_values=(2, 3))),
        fail_last_renewal=True,
    ),
)


def _day_total(meter: MeterPlan, day_index: int, day: datetime, rng: random.Random) -> float:
    base = meter.per_day * (1 + meter.growth) ** day_index * WEEKDAY[day.weekday()]
    return max(0.0, rng.gauss(base, base * 0.08))


def day_events(
    *, customer: str, slug: str, meter: MeterPlan, day_index: int, day: datetime, rng
) -> Iterator[dict]:
    """One day of events for one meter, spread over the hours like real traffic."""
    prefix = f"demo-{slug}-{meter.event_name}-{day:%Y%m%d}"
    if meter.last_values:
        step = max(1, 60 // len(meter.last_values))
        value = meter.last_values[min(len(meter.last_values) - 1, day_index // step)]
        yield {
            "event_name": meter.event_name,
            "customer": customer,
            "value": value,
            "timestamp": int((day + timedelta(hours=9)).timestamp()),
            "identifier": f"{prefix}-0",
        }
        return
    total = _day_total(meter, day_index, day, rng)
    count = meter.events_per_day or round(total)
    values = [1] * count
    if meter.events_per_day:
        share = total / count
        values = [max(1, round(rng.gauss(share, share * 0.3))) for _ in range(count)]
    hours = rng.choices(range(24), weights=HOURLY, k=count)
    for i, (hour, value) in enumerate(zip(hours, values, strict=True)):
        moment = day + timedelta(hours=hour, seconds=rng.randrange(3600))
        yield {
            "event_name": meter.event_name,
            "customer": customer,
            "value": value,
            "timestamp": int(moment.timestamp()),
            "identifier": f"{prefix}-{i}",
        }


def _ingest(events: list[dict], now: datetime) -> int:
    accepted = 0
    for start in range(0, len(events), 1000):
        result = usage_events_ingest(events=events[start : start + 1000], now=now)
        if result.rejected:
            raise RuntimeError(f"demo events rejected: {result.rejected[:3]}")
        accepted += result.accepted
    return accepted


def _apply_stripe_events(client, accounts: dict[str, Account]) -> None:
    """Account status from Stripe's events, in order (the webhook path does the same)."""
    events = list(client.v1.events.list({"limit": 100}).auto_paging_iter())
    for event in sorted(events, key=lambda e: e.created):
        obj = event.data.object
        customer = getattr(obj, "customer", None)
        account = accounts.get(customer) if isinstance(customer, str) else None
        if account is not None:
            account_apply_stripe_event(
                account=account,
                event_type=event.type,
                event_created=datetime.fromtimestamp(event.created, tz=UTC),
            )


def demo_seed(
    *,
    now: datetime | None = None,
    base_url: str = "http://127.0.0.1:8000",
    log: Callable[[str], None] = print,
) -> list:
    """Seed the demo once; returns [(name, plan, username, password)]."""
    now = now or timezone.now()
    client = stripe_client()
    log("Applying the demo catalog to Stripe...")
    catalog_apply(catalog=load_catalog(CATALOG), client=client)
    # Stripe's webhooks reach this server (renewals, failed payments, portal changes).
    webhook_endpoint_register(base_url=base_url)
    plans = {plan.key: plan for plan in Plan.objects.all()}
    start = (now - relativedelta(months=1) - timedelta(days=19)).replace(
        minute=0, second=0, microsecond=0
    )
    rng = random.Random(20261124)
    logins, by_customer = [], {}
    users = get_user_model()
    for spec in ACCOUNTS:
        log(f"Seeding {spec.name} on {plans[spec.plan].name}...")
        account = account_create(name=spec.name, billing_email=f"billing@{spec.slug}.example")
        password = f"demo-{spec.slug}"
        user = users.objects.create_user(
            spec.slug, email=f"owner@{spec.slug}.example", password=password
        )
        membership_add(account=account, user=user, role=Membership.Role.OWNER)
        clock = client.v1.test_helpers.test_clocks.create(
            {"frozen_time": int(start.timestamp()), "name": f"Demo {spec.name}"}
        )
        customer = account_ensure_stripe_customer(
            account=account, payment_method="pm_card_visa", test_clock=clock.id
        )
        by_customer[customer.id] = account
        subscription_create(account=account, plan=plans[spec.plan], payment_method=None)
        period_ends = [start + relativedelta(months=k) for k in (1, 2)]
        day, day_index = start, 0
        while day < now:
            week_end = min(day + timedelta(days=7), now)
            boundary = next((e for e in period_ends if day < e <= week_end), None)
            if boundary is not None:
                week_end = boundary
            events = []
            while day < week_end:
                for meter in spec.meters:
                    events.extend(
                        e
                        for e in day_events(
                            customer=customer.id,
                            slug=spec.slug,
                            meter=meter,
                            day_index=day_index,
                            day=day,
                            rng=rng,
                        )
                        if e["timestamp"] < week_end.timestamp()
                    )
                day += timedelta(days=1)
                day_index += 1
            day = week_end
            moment = week_end - timedelta(seconds=1)
            test_clock_advance(client=client, clock_id=clock.id, to=moment)
            _ingest(events, moment)
            usage_report_pass(now=moment, flush=True)
            if boundary is not None and boundary <= now:
                if spec.fail_last_renewal and boundary == max(e for e in period_ends if e <= now):
                    client.v1.customers.update(
                        customer.id,
                        {
                            "invoice_settings": {
                                "default_payment_method": "pm_card_chargeCustomerFail"
                            }
                        },
                    )
                test_clock_advance(
                    client=client, clock_id=clock.id, to=boundary + timedelta(minutes=1)
                )
        test_clock_advance(client=client, clock_id=clock.id, to=now)
        logins.append((spec.name, plans[spec.plan].name, spec.slug, password))
    log("Mirroring Stripe into dj-stripe...")
    stripe_sync_everything(client=client)
    _apply_stripe_events(client, by_customer)
    for spec in ACCOUNTS:
        account = Account.objects.get(name=spec.name)
        for rule in spec.extra_rules:
            rule = dict(rule)
            if "meter" in rule:
                from billing.models import Meter

                rule["meter"] = Meter.objects.get(event_name=rule["meter"])
            alert_rule_create(account=account, currency="usd", **rule)
    sent = alerts_evaluate_all(now=now)
    log(f"Alerts sent while seeding: {sent}")
    _, raw_key = ingest_key_create(name="demo traffic generator")
    INGEST_KEY_FILE.write_text(raw_key + "\n")
    write_logins(logins)
    return logins


def write_logins(logins) -> None:
    lines = ["  Customer logins (username / password):"]
    lines += [f"    {name:<20} {plan:<8} {user} / {pw}" for name, plan, user, pw in logins]
    LOGINS_FILE.write_text("\n".join(lines) + "\n")


def demo_is_seeded() -> bool:
    return Account.objects.filter(name=ACCOUNTS[0].name).exists()


def traffic_tick(*, rng: random.Random, base_url: str, key: str, session, clocks_to_now: bool):
    """One beat of live traffic: a few events for each demo account through the real API."""
    now = timezone.now()
    events = []
    for spec in ACCOUNTS:
        account = Account.objects.filter(name=spec.name).first()
        customer_id = customer_id_for_account(account=account) if account else None
        if customer_id is None:
            continue
        for meter in spec.meters:
            if meter.last_values:
                continue
            rate = meter.per_day / 24 / 60 / 30  # events per 2 s at the start rate
            count = max(1, int(rng.expovariate(1 / max(rate * 3, 0.5))))
            for _ in range(min(count, 50)):
                events.append(
                    {
                        "event_name": meter.event_name,
                        "customer": customer_id,
                        "value": 1 if not meter.events_per_day else max(1, int(rng.gauss(1, 0.5))),
                        "timestamp": int(now.timestamp()),
                        "identifier": f"live-{spec.slug}-{rng.getrandbits(64):016x}",
                    }
                )
    if clocks_to_now:
        client = stripe_client()
        for clock in client.v1.test_helpers.test_clocks.list({"limit": 100}).data:
            if clock.status == "ready" and clock.frozen_time < now.timestamp() - 30:
                client.v1.test_helpers.test_clocks.advance(
                    clock.id, {"frozen_time": math.floor(now.timestamp())}
                )
    response = session.post(
        f"{base_url}/api/v1/usage/events",
        json={"events": events},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    return response.status_code, len(events)
