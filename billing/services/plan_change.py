"""Plan change in-app: upgrade now, or switch at the end of the period, with Stripe's
proration shown before the customer confirms.

Now: ``POST /v1/invoices/create_preview`` with ``subscription`` and
``subscription_details[items|proration_behavior|proration_date]`` previews the change
("You can preview a proration to view the amount before applying the changes",
https://docs.stripe.com/billing/subscriptions/prorations); the confirmed change is
``POST /v1/subscriptions/{id}`` with the same items, ``proration_behavior=always_invoice``
("to charge for an upgrade immediately, pass proration_behavior as always_invoice to
create prorations, automatically invoice the customer for those proration adjustments,
and attempt to collect payment", https://docs.stripe.com/api/subscriptions/update) and
the same ``proration_date`` ("This can be used to apply exactly the same proration that
was previewed with the create preview endpoint"), so the invoice equals the preview.
Only licensed items (the base fee) are prorated: "Prorations are created only for
licensed (per-seat) subscriptions because they're billed at the start of each billing
period"; metered usage bills in arrears.

At the end of the period: a subscription schedule made ``from_subscription`` whose
second phase (the new plan's prices, starting at the current period's end) Stripe enters
at the boundary (https://docs.stripe.com/billing/subscriptions/subscription-schedules,
"Upgrading or downgrading a subscription"); ``end_behavior=release`` leaves the
subscription on its own afterwards. Nothing is due now; the renewal invoice bills the
new plan's base fee in advance, this period's usage on the old plan's prices.

The mirror is not written here: the result shows when Stripe's
``customer.subscription.updated`` reaches dj-stripe (the page polls for it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import stripe
from djstripe.models import Subscription

from billing.mirror.prices import plan_for_price_ids
from billing.models import Account, Plan
from billing.money import format_money
from billing.services.preview import describe_stripe_error
from billing.services.subscriptions import (
    SubscriptionError,
    _items_for,
    account_current_subscription,
    plans_for_account,
)
from billing.stripe_api import stripe_client

NOW = "now"
PERIOD_END = "period_end"
WHEN_CHOICES = (NOW, PERIOD_END)
# A preview older than this (Stripe's clock) is not applied: the customer previews again.
PREVIEW_VALID_SECONDS = 15 * 60


class PlanChangeError(ValueError):
    """A refused plan change: ``code`` for programs, ``field`` the form field (or None),
    ``message`` for people."""

    def __init__(self, code: str, field: str | None, message: str):
        super().__init__(message)
        self.code, self.field, self.message = code, field, message


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanChangeLine:
    description: str
    amount: int  # minor units; credits are negative
    currency: str
    proration: bool
    period_start: datetime | None
    period_end: datetime | None

    @property
    def amount_display(self) -> str:
        return format_money(self.amount, self.currency)


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanChangePreview:
    account_id: int
    subscription_id: str
    from_plan: Plan | None
    to_plan: Plan
    when: str
    currency: str
    lines: tuple[PlanChangeLine, ...]
    total: int  # Stripe's invoice total for the change (now), or 0 (period end)
    due_now: int  # what is charged at once (a negative total is credited, not paid)
    effective_at: datetime
    proration_date: int | None  # the second the proration is computed for (now)
    renewal_total: int | None = None  # the new plan's licensed fees at the boundary

    def _money(self, amount: int | None) -> str:
        return "\u2014" if amount is None else format_money(amount, self.currency)

    @property
    def total_display(self) -> str:
        return self._money(self.total)

    @property
    def due_now_display(self) -> str:
        return self._money(self.due_now)

    @property
    def renewal_total_display(self) -> str:
        return self._money(self.renewal_total)

    @property
    def credit(self) -> int:
        """What goes to the customer's credit balance (a downgrade now), else 0."""
        return -self.total if self.total < 0 else 0

    @property
    def credit_display(self) -> str:
        return self._money(self.credit)


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanChangeResult:
    subscription_id: str
    to_plan: Plan
    when: str
    effective_at: datetime
    invoice_id: str | None = None
    schedule_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingPlanChange:
    """A change at period end waiting in a subscription schedule."""

    schedule_id: str
    to_plan: Plan | None
    effective_at: datetime


def _at(ts: int | None) -> datetime | None:
    return datetime.fromtimestamp(int(ts), UTC) if ts is not None else None


def _refuse_canceled(account: Account) -> None:
    latest = Subscription.objects.filter(customer__subscriber=account).order_by("-created").first()
    if latest is not None and (latest.stripe_data or {}).get("status") == "canceled":
        raise PlanChangeError(
            "subscription_canceled",
            None,
            "Your subscription is canceled: subscribe again instead of changing its plan.",
        )


def _context(*, account: Account, plan: Plan, when: str, client) -> dict[str, Any]:
    """Validate the request and read the live subscription: its items, period, plan."""
    if when not in WHEN_CHOICES:
        raise PlanChangeError("invalid_when", "when", "Choose now or at the end of the period.")
    current = account_current_subscription(account=account)
    if current is None:
        _refuse_canceled(account)
        raise PlanChangeError("no_subscription", None, "There is no subscription to change.")
    if plan is None or not plans_for_account(account=account).filter(pk=plan.pk).exists():
        currency = account.currency.upper()
        raise PlanChangeError(
            "plan_not_available",
            "plan",
            f"That plan is not offered in {currency}, the currency you are billed in.",
        )
    try:
        new_items = _items_for(plan, account.currency)
    except SubscriptionError as exc:
        raise PlanChangeError("plan_not_available", "plan", str(exc)) from exc
    try:
        remote = client.v1.subscriptions.retrieve(current.id).to_dict()
    except stripe.StripeError as exc:
        raise PlanChangeError("stripe_error", None, describe_stripe_error(exc)) from exc
    if remote["status"] == "canceled":
        _refuse_canceled(account)
    if remote.get("cancel_at_period_end"):
        raise PlanChangeError(
            "subscription_ending",
            None,
            "Your subscription ends at the end of this period: it cannot change plan.",
        )
    items = remote["items"]["data"]
    from_plan = plan_for_price_ids(item["price"]["id"] for item in items)
    if from_plan is not None and from_plan.pk == plan.pk:
        raise PlanChangeError("current_plan", "plan", f"You are already on {plan.name}.")
    first = items[0]
    return {
        "subscription": remote,
        "from_plan": from_plan,
        "items": [{"id": item["id"], "deleted": True} for item in items] + new_items,
        "period_start": int(first["current_period_start"]),
        "period_end": int(first["current_period_end"]),
        "interval": first["price"]["recurring"]["interval"],
        "interval_count": first["price"]["recurring"]["interval_count"],
    }


def _lines(invoice: dict) -> tuple[PlanChangeLine, ...]:
    rows = []
    for line in (invoice.get("lines") or {}).get("data") or []:
        parent = line.get("parent") or {}
        details = parent.get("subscription_item_details") or parent.get("invoice_item_details")
        period = line.get("period") or {}
        rows.append(
            PlanChangeLine(
                description=line.get("description") or "",
                amount=int(line["amount"]),
                currency=line.get("currency") or invoice["currency"],
                proration=bool((details or {}).get("proration")),
                period_start=_at(period.get("start")),
                period_end=_at(period.get("end")),
            )
        )
    return tuple(rows)


def _preview_invoice(client, subscription_id: str, details: dict) -> dict:
    try:
        return client.v1.invoices.create_preview(
            {"subscription": subscription_id, "subscription_details": details}
        ).to_dict()
    except stripe.StripeError as exc:
        raise PlanChangeError("stripe_error", None, describe_stripe_error(exc)) from exc


def plan_change_preview(
    *,
    account: Account,
    plan: Plan,
    when: str,
    proration_date: int | None = None,
    client=None,
) -> PlanChangePreview:
    """What changing to ``plan`` ``when`` would bring, from Stripe's ``create_preview``.

    Now: the proration invoice (a credit for the unused time of the old plan's base fee, a
    charge for the rest of the period on the new one), its total and what is due at once,
    for ``proration_date`` (default: Stripe's now, the test clock's time on a clock).
    At period end: nothing due now, the date it takes effect, and the new plan's licensed
    fees as the renewal invoice will bill them.
    """
    client = client or stripe_client()
    ctx = _context(account=account, plan=plan, when=when, client=client)
    sub = ctx["subscription"]
    if when == NOW:
        if proration_date is None:  # Stripe's now, named, so the apply uses this second
            proration_date = _stripe_now(client, sub)
        details: dict[str, Any] = {
            "items": ctx["items"],
            "proration_behavior": "always_invoice",
            "proration_date": int(proration_date),
        }
        invoice = _preview_invoice(client, sub["id"], details)
        total = int(invoice["total"])
        return PlanChangePreview(
            account_id=account.pk,
            subscription_id=sub["id"],
            from_plan=ctx["from_plan"],
            to_plan=plan,
            when=when,
            currency=invoice["currency"],
            lines=_lines(invoice),
            total=total,
            due_now=int(invoice["amount_due"]),
            effective_at=_at(proration_date),
            proration_date=int(proration_date),
        )
    invoice = _preview_invoice(
        client, sub["id"], {"items": ctx["items"], "proration_behavior": "none"}
    )
    boundary = ctx["period_end"]
    # The new plan's fees billed in advance from the boundary; this period's usage is
    # billed on the current plan's prices (the schedule changes the items only then).
    lines = tuple(
        line
        for line in _lines(invoice)
        if line.period_start is not None and int(line.period_start.timestamp()) == boundary
    )
    return PlanChangePreview(
        account_id=account.pk,
        subscription_id=sub["id"],
        from_plan=ctx["from_plan"],
        to_plan=plan,
        when=when,
        currency=invoice["currency"],
        lines=lines,
        total=0,
        due_now=0,
        effective_at=_at(boundary),
        proration_date=None,
        renewal_total=sum(line.amount for line in lines),
    )


def _release_schedule(client, sub: dict, *, key: str) -> None:
    schedule_id = sub.get("schedule")
    if isinstance(schedule_id, dict):
        schedule_id = schedule_id.get("id")
    if schedule_id:
        client.v1.subscription_schedules.release(
            schedule_id, {}, {"idempotency_key": f"{key}-release-{schedule_id}"}
        )


def plan_change_apply(
    *,
    account: Account,
    plan: Plan,
    when: str,
    confirmed_preview_total: int,
    proration_date: int | None = None,
    client=None,
) -> PlanChangeResult:
    """Make the change the customer confirmed.

    Now: previewed again for the confirmed ``proration_date``; if Stripe's total is no
    longer ``confirmed_preview_total`` (or the preview is older than
    :data:`PREVIEW_VALID_SECONDS`), refused so the customer sees the new one; else the
    subscription update with ``always_invoice`` and that ``proration_date``: the invoice
    made equals the preview. At period end: the schedule's next phase (nothing changes
    before the boundary). Idempotency keys make a retried confirmation harmless.
    """
    client = client or stripe_client()
    if when == NOW and proration_date is None:
        raise PlanChangeError("preview_required", None, "Preview the change before confirming it.")
    preview = plan_change_preview(
        account=account, plan=plan, when=when, proration_date=proration_date, client=client
    )
    if preview.total != int(confirmed_preview_total):
        raise PlanChangeError(
            "preview_changed",
            None,
            f"The amount changed since your preview: it is now {preview.total_display}. "
            "Check it and confirm again.",
        )
    ctx = _context(account=account, plan=plan, when=when, client=client)
    sub = ctx["subscription"]
    key = f"meterdesk-plan-change-{account.pk}-{sub['id']}-{plan.key}-{when}"
    try:
        if when == NOW:
            stripe_now = _stripe_now(client, sub)
            if stripe_now - int(proration_date) > PREVIEW_VALID_SECONDS:
                raise PlanChangeError(
                    "preview_expired", None, "Your preview has expired: preview the change again."
                )
            _release_schedule(client, sub, key=key)  # a pending period-end change yields
            remote = client.v1.subscriptions.update(
                sub["id"],
                {
                    "items": ctx["items"],
                    "proration_behavior": "always_invoice",
                    "proration_date": int(proration_date),
                    "metadata": {"meterdesk_plan": plan.key},
                },
                {"idempotency_key": f"{key}-{proration_date}"},
            )
            return PlanChangeResult(
                subscription_id=sub["id"],
                to_plan=plan,
                when=when,
                effective_at=_at(proration_date),
                invoice_id=remote.latest_invoice
                if isinstance(remote.latest_invoice, str)
                else getattr(remote.latest_invoice, "id", None),
            )
        return _schedule_at_period_end(client, sub, ctx, plan=plan, key=key)
    except stripe.StripeError as exc:
        raise PlanChangeError("stripe_error", None, describe_stripe_error(exc)) from exc


def _stripe_now(client, sub: dict) -> int:
    """Stripe's now for this subscription's customer (its test clock's time, if any)."""
    clock = sub.get("test_clock")
    if isinstance(clock, dict):
        clock = clock.get("id")
    if clock:
        return int(client.v1.test_helpers.test_clocks.retrieve(clock).frozen_time)
    return int(datetime.now(UTC).timestamp())


def _schedule_at_period_end(client, sub: dict, ctx: dict, *, plan: Plan, key: str):
    boundary = ctx["period_end"]
    schedule_id = sub.get("schedule")
    if isinstance(schedule_id, dict):
        schedule_id = schedule_id.get("id")
    if not schedule_id:
        schedule_id = client.v1.subscription_schedules.create(
            {"from_subscription": sub["id"]},
            {"idempotency_key": f"{key}-schedule-{boundary}"},
        ).id
    schedule = client.v1.subscription_schedules.retrieve(schedule_id)
    current_items = [
        {
            "price": item["price"]["id"],
            **(
                {"quantity": item["quantity"]}
                if "quantity" in item and item["quantity"] is not None
                else {}
            ),
        }
        for item in ctx["subscription"]["items"]["data"]
    ]
    new_items = [item for item in ctx["items"] if "price" in item]
    client.v1.subscription_schedules.update(
        schedule_id,
        {
            "end_behavior": "release",
            "phases": [
                {
                    "items": current_items,
                    "start_date": schedule.phases[0].start_date,
                    "end_date": boundary,
                },
                {
                    "items": new_items,
                    "duration": {
                        "interval": ctx["interval"],
                        "interval_count": ctx["interval_count"],
                    },
                    "metadata": {"meterdesk_plan": plan.key},
                },
            ],
        },
        {"idempotency_key": f"{key}-phases-{schedule_id}-{boundary}"},
    )
    return PlanChangeResult(
        subscription_id=sub["id"],
        to_plan=plan,
        when=PERIOD_END,
        effective_at=_at(boundary),
        schedule_id=schedule_id,
    )


def plan_change_pending(*, account: Account, client=None) -> PendingPlanChange | None:
    """A period-end change waiting in the live subscription's schedule, from Stripe."""
    current = account_current_subscription(account=account)
    schedule_id = (current.stripe_data or {}).get("schedule") if current else None
    if isinstance(schedule_id, dict):
        schedule_id = schedule_id.get("id")
    if not schedule_id:
        return None
    client = client or stripe_client(max_network_retries=1)
    try:
        schedule = client.v1.subscription_schedules.retrieve(schedule_id).to_dict()
    except stripe.StripeError:
        return None
    current_phase = schedule.get("current_phase") or {}
    if schedule.get("status") != "active" or not current_phase:
        return None
    phase = next(
        (p for p in schedule["phases"] if p["start_date"] > current_phase["start_date"]), None
    )
    if phase is None:  # in its last phase: nothing left to change
        return None
    return PendingPlanChange(
        schedule_id=schedule_id,
        to_plan=plan_for_price_ids(item["price"] for item in phase["items"]),
        effective_at=_at(phase["start_date"]),
    )
