"""The demo seed: seven customer accounts (one billed in yen) with realistic history,
seeded through the real product (catalog, Stripe customers on test clocks, subscriptions,
the ingestion service, the reporting pass, Stripe's invoices), never by writing fake
numbers.

History is replayed week by week: each account's test clock is advanced to the end of
the week, that week's events are ingested and reported as of that moment, and every
period end is crossed with the clock so Stripe (the emulator) invoices it.
"""

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from billing.catalog.spec import load_catalog
from billing.models import Account, Membership, Meter, Plan
from billing.services.accounts import (
    account_apply_stripe_event,
    account_create,
    account_ensure_stripe_customer,
    membership_add,
)
from billing.services.catalog import catalog_apply
from billing.services.credit_stripe import credit_grant_advance
from billing.services.credits import credit_grant_create
from billing.services.stripe_sync import stripe_sync_everything
from billing.services.subscriptions import subscription_create
from billing.services.test_clocks import test_clock_advance
from billing.services.thin_events import thin_event_destination_register
from billing.services.webhook_endpoints import webhook_endpoint_register
from billing.stripe_api import stripe_client
from demo.accounts import ACCOUNTS, day_events, history_start
from usage.services.alerts import alert_rule_create, alerts_evaluate_all
from usage.services.ingest import usage_events_ingest
from usage.services.keys import ingest_key_create
from usage.services.reporting import usage_report_pass

CATALOG = Path(settings.BASE_DIR) / "billing" / "catalog" / "demo.toml"
LOGINS_FILE = Path(settings.VAR_DIR) / "demo-logins.txt"
INGEST_KEY_FILE = Path(settings.VAR_DIR) / "demo-ingest-key.txt"


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
    events.reverse()  # listed newest first; many share a second, so keep their order
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


def _grant_credits(account: Account, *, name: str, category: str, amount: int, client) -> None:
    """A grant made now (at the customer's clock time), its Stripe steps taken at once
    (a paid one: its purchase invoice charged to the card, then the grant)."""
    grant = credit_grant_create(account=account, name=name, category=category, amount=amount)
    for _ in range(3):  # purchase invoice -> paid -> grant: each call takes what it can
        grant = credit_grant_advance(grant_id=grant.pk, client=client, attempt_payment=True)
        if grant.status == grant.Status.ACTIVE:
            return
    raise RuntimeError(f"demo credits {name!r} for {account}: {grant.status} {grant.last_error}")


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
    # Its thin events too: meter event errors Stripe reports after answering 200.
    thin_event_destination_register(base_url=base_url, client=client)
    plans = {plan.key: plan for plan in Plan.objects.all()}
    start = history_start(now)
    rng = random.Random(20261124)
    logins, by_customer = [], {}
    users = get_user_model()
    for spec in ACCOUNTS:
        log(f"Seeding {spec.name} on {plans[spec.plan].name}...")
        account = account_create(name=spec.name, billing_email=f"billing@{spec.slug}.example")
        if spec.currency != account.currency:
            account.currency = spec.currency  # before its Stripe customer and subscription
            account.save(update_fields=["currency"])
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
        for name, category, amount in spec.credits:
            _grant_credits(account, name=name, category=category, amount=amount, client=client)
        period_ends = [start + relativedelta(months=k) for k in (1, 2)]
        day, day_index, clock_at = start, 0, start
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
            clock_at = moment
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
                # Past the period end and the hour its renewal invoice stays a draft
                # (Stripe finalizes and charges it then), so the demo shows it settled.
                clock_at = min(boundary + timedelta(hours=1, minutes=1), now)
                test_clock_advance(client=client, clock_id=clock.id, to=clock_at)
        if clock_at < now:
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
                rule["meter"] = Meter.objects.get(event_name=rule["meter"])
            alert_rule_create(account=account, currency=account.currency, **rule)
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
