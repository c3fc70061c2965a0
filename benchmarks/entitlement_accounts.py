"""The entitlement benchmark's accounts and what the check must answer for them: Scale
plan (graduated tiers with flat fees on the ``transactions`` count meter) accounts with a
hard-capped units budget and a hard-capped spend budget, their usage ingested through
the API, and the expected answers computed from the ledger (a ``count(*)`` of the
period's events) and the catalog's tiers, with none of the application's budget or
pricing code."""

from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal
from urllib.parse import urlencode

from benchmarks import common, fixtures, open_loop
from benchmarks.common import check

CHECK_PATH = "/api/v1/entitlements/check"
TRIVIAL_PATH = "/bench/trivial"
PLAN, METER = "scale", "transactions"
PERIOD_DAYS_SO_FAR = 5
# (profile, events ingested, units limit, spend limit in cents). The spend figures by
# hand on the Scale tiers (1,000 x 5c + $10 flat; to 10,000 x 3c + $5 flat; then 1c):
# 300 -> 1,000 + 1,500 = 2,500; 990 -> 5,950; 1,200 -> 6,000 + 500 + 600 = 7,100;
# 1,100 -> 6,000 + 500 + 300 = 6,800, so a 6,900 limit leaves room for 33 more.
PROFILES = (
    ("under", 300, 5_000, 100_000),
    ("near-units-cap", 990, 1_000, 100_000),
    ("at-units-cap", 1_200, 1_200, 100_000),
    ("near-spend-cap", 1_100, 100_000, 6_900),
)
QUANTITIES = (1, 10, 50)


def scale_tiers() -> list[tuple[int | None, Decimal, Decimal]]:
    """(up_to, unit, flat) of the Scale price, read from the catalog file."""
    from billing.catalog.spec import load_catalog

    plan = next(p for p in load_catalog(common.CATALOG).plans if p.key == PLAN)
    # The usd price (the catalog's currency); the plan is also priced in jpy.
    (price,) = [p for p in plan.prices if p.params["currency"] == "usd"]
    check(price.params.get("tiers_mode") == "graduated", f"{PLAN} is not graduated")
    return [
        (
            None if t["up_to"] == "inf" else int(t["up_to"]),
            Decimal(t.get("unit_amount_decimal", t.get("unit_amount", 0))),
            Decimal(t.get("flat_amount_decimal", t.get("flat_amount", 0))),
        )
        for t in price.params["tiers"]
    ]


def graduated_amount(tiers, quantity: int) -> int:
    """Cents for ``quantity`` on graduated tiers: each tier's units at its rate, its flat
    fee once the quantity enters it (the first tier's with any usage), rounded half up."""
    total, below = Decimal(0), 0
    for up_to, unit, flat in tiers:
        if quantity <= below and below > 0:
            break
        top = quantity if up_to is None else min(quantity, up_to)
        total += flat + unit * max(0, top - below)
        below = up_to if up_to is not None else quantity
    return int(total.quantize(Decimal(1), rounding="ROUND_HALF_UP"))


def expected_answer(*, used: int, quantity: int, units_limit: int, spend_limit: int, tiers):
    """What the check must answer for one more ``quantity`` (both budgets hard-capped)."""
    units_room = max(0, units_limit - used)
    # The most units whose bill stays within the spend limit (the amount only grows).
    low, high = 0, units_room + 1
    if graduated_amount(tiers, used) > spend_limit:
        spend_room = 0
    else:
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (
                (mid, high) if graduated_amount(tiers, used + mid) <= spend_limit else (low, mid)
            )
        spend_room = low
    remaining = min(units_room, spend_room)
    allowed = quantity <= remaining
    return {
        "allowed": allowed,
        "remaining": remaining,
        "reason": "ok" if allowed else "cap_reached",
    }


def make_accounts(env, n: int, tag: str) -> list[dict]:
    from billing.models import Meter
    from usage.models_budgets import Budget
    from usage.services.budgets import budget_set

    meter = Meter.objects.get(event_name=METER)
    accounts = []
    for i in range(n):
        profile, events, units_limit, spend_limit = PROFILES[i % len(PROFILES)]
        account = fixtures.make_account(
            name=f"Entitlements {tag} {i} {profile}",
            plan_key=PLAN,
            env=env,
            period_started_days_ago=PERIOD_DAYS_SO_FAR,
        )
        common_fields = {
            "account": account,
            "hard_cap": True,
            "warn_levels": [50, 80, 100],
            "source": Budget.Source.STAFF,
        }
        budget_set(kind=Budget.Kind.UNITS, meter=meter, limit=units_limit, **common_fields)
        budget_set(kind=Budget.Kind.SPEND, limit=spend_limit, **common_fields)
        accounts.append(
            {
                "account": account,
                "customer": fixtures.customer_id(account),
                "profile": profile,
                "events": events,
                "units_limit": units_limit,
                "spend_limit": spend_limit,
            }
        )
    return accounts


def ingest(server, key: str, accounts: list[dict], tag: str) -> int:
    """Each account's events through the API, 1,000 a request; returns events accepted."""
    now, accepted = int(time.time()), 0
    conn = server.connection(timeout=120)
    for a in accounts:
        events = [
            {
                "event_name": METER,
                "customer": a["customer"],
                "value": 1,
                "timestamp": now - 60 - (i % 3000),
                "identifier": f"ent-{tag}-{uuid.uuid4().hex}",
            }
            for i in range(a["events"])
        ]
        for first in range(0, len(events), 1000):
            body = json.dumps({"events": events[first : first + 1000]}).encode()
            conn.request(
                "POST",
                "/api/v1/usage/events",
                body=body,
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            )
            response = conn.getresponse()
            data = json.loads(response.read())
            check(response.status == 202 and not data["rejected"], f"ingest: {data}")
            accepted += data["accepted"]
    conn.close()
    return accepted


def expectations(accounts: list[dict], tiers, *, port: int, key: str, path: str):
    """The check requests (one per account and quantity), their expected answers, from
    the ledger (the period's events counted in SQL), and the checks as POST items."""
    from billing.mirror.subscriptions import subscription_state_for_account
    from billing.models import Meter

    meter = Meter.objects.get(event_name=METER)
    requests, expected, checks = [], [], []
    for a in accounts:
        state = subscription_state_for_account(account=a["account"])
        used = common.raw_sql(
            "SELECT count(*) FROM usage_usageevent WHERE account_id = %s AND meter_id = %s"
            " AND timestamp >= %s AND timestamp < %s",
            [a["account"].pk, meter.pk, state.period_start, state.period_end],
        )[0][0]
        check(used == a["events"], f"{a['customer']}: ledger {used}, sent {a['events']}")
        for quantity in QUANTITIES:
            query = urlencode(
                {"customer": a["customer"], "event_name": METER, "quantity": quantity}
            )
            requests.append(
                open_loop.http_get(
                    f"{path}?{query}", port=port, headers={"Authorization": f"Bearer {key}"}
                )
            )
            answer = expected_answer(
                used=used,
                quantity=quantity,
                units_limit=a["units_limit"],
                spend_limit=a["spend_limit"],
                tiers=tiers,
            )
            answer["resets_at"] = _iso(state.period_end)
            expected.append(answer if path != TRIVIAL_PATH else None)
            checks.append({"customer": a["customer"], "event_name": METER, "quantity": quantity})
    return requests, expected, checks


def batches(checks: list[dict], expected: list, size: int, *, port: int, key: str, path: str):
    """POST requests of ``size`` checks each (every check in as many batches as the
    others, in rotating order) and their expected ``{"results": [...]}``."""
    requests, answers = [], []
    for first in range(len(checks)):
        picked = [(first + j) % len(checks) for j in range(size)]
        body = json.dumps({"checks": [checks[i] for i in picked]}).encode()
        requests.append(
            open_loop.http_post(path, body, port=port, headers={"Authorization": f"Bearer {key}"})
        )
        wanted = [expected[i] for i in picked]
        answers.append({"results": wanted} if None not in wanted else None)
    return requests, answers


def _iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")
