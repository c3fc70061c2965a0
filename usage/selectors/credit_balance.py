"""The customer's live credit balance: what their credits cover of this period's usage so
far, what is left, what expires soon and when, at the projected pace, the credits run out.

Stripe only debits a grant when the period's invoice finalizes ([BC] "Credits apply to
invoices only at the time of finalization"), and its previews show credits
provisionally. Meterdesk does the same provisional application, live, on its own ledger:
the period summary's usage so far is rated line by line by the pricing engine
(:func:`billing.pricing.rate_line`) and the grants are applied with
:func:`billing.pricing.apply_credits`, eligibility judged at the period's end as Stripe
does ([BC] "Credit grant eligibility": the invoice's ``period_end`` must be before the
grant's ``expires_at``), so a grant that expires before this period ends is *not* usable
for it: its balance is listed as expiring unused. Nothing waits for a usage report to
reach Stripe.

[BC] https://docs.stripe.com/billing/subscriptions/usage-based/billing-credits

Figures are minor units of the period's (= the account's) currency:

- ``granted``: the amounts of the account's active, unexpired grants;
- ``available_before_period``: the ledger balances of the grants eligible for this
  period's invoice, from Stripe's mirror (``billing.mirror.credits.grant_balances``):
  what is left for this invoice;
- ``used_this_period``: what the usage so far would take from them;
- ``remaining`` = available - used;
- ``expiring_soon``: grants with credits left that expire before this period ends
  (unusable for its invoice) or within 14 days;
- ``run_out_at`` / ``covers_period``: see :func:`credit_run_out_at`.

A constant number of queries: the grants and their ledger (``grant_balances``); the
summary's projections (read for the run-out date) cost the two queries they cost the
dashboard, once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from billing.mirror.credits import GrantBalance, grant_balances
from billing.models import Account
from billing.models_credits import CreditBalanceTransaction, CreditGrant
from billing.pricing import CreditGrantSpec, LineItem, apply_credits, eligible_grants, rate_line
from usage.selectors.summary_lines import PeriodSummary

EXPIRING_WITHIN = timedelta(days=14)
_MINUTE = 60


@dataclass(frozen=True)
class GrantLine:
    """One active grant as the customer sees it this period."""

    grant: GrantBalance
    ledger_balance: int  # Stripe's ledger (finalized invoices only)
    remaining: int  # after this period's usage so far (the ledger when not usable now)
    usable_this_period: bool


@dataclass(frozen=True)
class ExpiringCredit:
    grant: GrantBalance
    amount: int  # credits left on it that will expire
    expires_at: datetime
    usable_this_period: bool  # False: it expires before this period's invoice


@dataclass(frozen=True)
class CreditBalance:
    currency: str
    granted: int
    available_before_period: int
    used_this_period: int
    remaining: int
    expiring_soon: tuple[ExpiringCredit, ...]
    run_out_at: datetime | None
    covers_period: bool
    projected: bool  # False: too early in the period to project a run-out date
    projected_cost: int  # what credits could cover of the projected usage at period end
    projected_credited: int  # what they will cover of it (<= available)
    period_start: datetime
    period_end: datetime
    now: datetime
    grants: tuple[GrantLine, ...]

    @property
    def projected_credited_negative(self) -> int:
        """``-projected_credited``, for templates subtracting it from an estimate."""
        return -self.projected_credited

    @property
    def run_out(self) -> bool:
        """The credits do not cover the usage so far already."""
        return self.run_out_at is not None and self.run_out_at <= self.now

    @property
    def used_percent(self) -> int:
        """Share of the available credits used this period, 0..100 (for a bar)."""
        if self.available_before_period <= 0:
            return 100 if self.used_this_period or self.run_out else 0
        return min(100, self.used_this_period * 100 // self.available_before_period)


def credit_balance(
    *, account: Account, summary: PeriodSummary, now: datetime | None = None
) -> CreditBalance | None:
    """The account's live credit balance for ``summary``'s period; None when the account
    has no active grant in the period's currency (nothing to show)."""
    now = now or summary.now
    currency = summary.currency
    balances = [
        b
        for b in grant_balances(account=account, now=now)
        if b.status == CreditGrant.Status.ACTIVE and b.currency == currency
    ]
    if not balances:
        return None
    specs = {}
    for balance in balances:
        spec = balance.to_spec()
        specs[spec.id] = (balance, spec)
    all_specs = [spec for _, spec in specs.values()]
    eligible = {
        spec.id
        for spec in eligible_grants(
            grants=all_specs, currency=currency, period_end=summary.period_end
        )
    }
    lines = _lines(summary, [line.usage for line in summary.lines])
    credited = apply_credits(lines=lines, grants=all_specs, period_end=summary.period_end)

    grant_lines = []
    expiring = []
    for spec_id, (balance, spec) in specs.items():
        grant = balance
        usable = spec_id in eligible
        left = credited.remaining.get(spec_id, spec.balance) if usable else spec.balance
        grant_lines.append(
            GrantLine(
                grant=grant,
                ledger_balance=balance.ledger_balance,
                remaining=left,
                usable_this_period=usable,
            )
        )
        expires = grant.expires_at
        if (
            left > 0
            and expires is not None
            and expires > now
            and (expires <= summary.period_end or expires <= now + EXPIRING_WITHIN)
        ):
            expiring.append(
                ExpiringCredit(
                    grant=grant, amount=left, expires_at=expires, usable_this_period=usable
                )
            )

    available = sum(specs[spec_id][1].balance for spec_id in eligible)
    granted = sum(b.amount for b in balances if b.expires_at is None or b.expires_at > now)
    run_out_at, projected_cost, projected_credited, projected = credit_run_out_at(
        summary=summary, grants=all_specs, now=now
    )
    return CreditBalance(
        currency=currency,
        granted=granted,
        available_before_period=available,
        used_this_period=credited.credited,
        remaining=available - credited.credited,
        expiring_soon=tuple(sorted(expiring, key=lambda e: (e.expires_at, e.grant.pk))),
        run_out_at=run_out_at,
        covers_period=run_out_at is None,
        projected=projected,
        projected_cost=projected_cost,
        projected_credited=projected_credited,
        period_start=summary.period_start,
        period_end=summary.period_end,
        now=now,
        grants=tuple(sorted(grant_lines, key=lambda g: (not g.usable_this_period, g.grant.pk))),
    )


def _lines(summary: PeriodSummary, quantities: Sequence[int]) -> list[LineItem]:
    """The period's metered invoice lines at these usages, in invoice order."""
    return [
        rate_line(
            price=line.item.spec,
            quantity=quantity,
            period_start=summary.period_start,
            period_end=summary.period_end,
        )
        for line, quantity in zip(summary.lines, quantities, strict=True)
    ]


def _uncovered(
    summary: PeriodSummary, grants: list[CreditGrantSpec], unlimited: list[CreditGrantSpec]
) -> Callable[[Sequence[int]], tuple[bool, int]]:
    """A test of usages: (does usage the credits could cover go uncovered, what could be
    covered). "Could cover" applies the same grants with balances no usage can exhaust;
    "covered" applies them with their real balances: credits have run out as soon as
    the two differ (a line in a grant's scope is billed although the grant applies)."""

    def test(quantities: Sequence[int]) -> tuple[bool, int, int]:
        lines = _lines(summary, quantities)
        coverable = apply_credits(lines=lines, grants=unlimited, period_end=summary.period_end)
        covered = apply_credits(lines=lines, grants=grants, period_end=summary.period_end)
        return coverable.credited > covered.credited, coverable.credited, covered.credited

    return test


def credit_run_out_at(
    *, summary: PeriodSummary, grants: list[CreditGrantSpec], now: datetime
) -> tuple[datetime | None, int, int, bool]:
    """When the credits stop covering the usage they apply to, at the projected pace:
    ``(run_out_at or None, creditable cost of the projected usage, credits it would use,
    projected?)``.

    Method. The dashboard's projection (``MeterLine.projection``, see
    :mod:`usage.projections`) gives each meter's expected usage at period end; it exposes
    that total, not a per-day curve (its weekday factors stay inside the projection), so
    the usage still to come -- ``projected - usage so far`` per meter -- is assumed to
    accrue evenly in time from ``now`` to period end (which is the ``linear`` method's
    own assumption, and the ``weighted_weekday`` total spread evenly). At a moment ``t``
    each meter's usage is ``so_far + (projected - so_far) x (t - now) / (end - now)``
    (whole units, rounded down, integer arithmetic), rated by the pricing engine, and
    the grants applied as at finalization. The run-out moment is the first whole minute
    at which some usage a grant could credit is no longer credited (the credits are
    spent: the invoice would charge for it), found by bisection over the minutes to
    period end. Rated line amounts are whole minor units (rounded half up per line, as
    Stripe does), so with a 0.1¢ price a 500¢ balance runs out at the 5,005th unit
    (500.5¢ -> 501¢), not the 5,000th.

    ``last`` meters project their current value: they add no usage over time. Volume
    tiers can make cost fall as usage rises; the bisection then finds a run-out moment,
    not necessarily the first.

    Already not covering the usage so far: ``now``. Covering the projected usage at
    period end (or a period already ended): None. Before any meter can be projected
    (the projection's method is ``none`` everywhere, under a day into the period) the
    usage so far is the projection and ``projected`` is False.
    """
    so_far = [line.usage for line in summary.lines]
    positive = [g for g in grants if g.balance > 0]
    total_amount = sum(line.amount for line in _lines(summary, so_far))
    if summary.closed or now >= summary.period_end:
        test = _uncovered(summary, positive, _unlimited(positive, total_amount))
        uncovered, coverable, covered = test(so_far)
        return (now if uncovered else None), coverable, covered, True
    projections = [line.projection for line in summary.lines]
    projected = any(p.method != "none" for p in projections)
    target = [
        max(p.projected, line.usage) for p, line in zip(projections, summary.lines, strict=True)
    ]
    at_end = sum(line.amount for line in _lines(summary, target))
    test = _uncovered(summary, positive, _unlimited(positive, max(at_end, total_amount)))
    uncovered_now = test(so_far)[0]
    uncovered_end, coverable_end, covered_end = test(target)
    if uncovered_now:
        return now, coverable_end, covered_end, projected
    if not uncovered_end:
        return None, coverable_end, covered_end, projected
    span = int((summary.period_end - now).total_seconds())
    extra = [t - s for t, s in zip(target, so_far, strict=True)]

    def usage_at(seconds: int) -> list[int]:
        return [s + e * seconds // span for s, e in zip(so_far, extra, strict=True)]

    # The first minute (counted from now) whose usage goes uncovered; the period end
    # (span seconds) is known to be uncovered, minute 0 covered.
    low, high = 0, -(-span // _MINUTE)
    while high - low > 1:
        middle = (low + high) // 2
        if test(usage_at(min(middle * _MINUTE, span)))[0]:
            high = middle
        else:
            low = middle
    run_out_at = now + timedelta(seconds=min(high * _MINUTE, span))
    return run_out_at, coverable_end, covered_end, projected


def _unlimited(grants: list[CreditGrantSpec], amount: int) -> list[CreditGrantSpec]:
    """The same grants with a balance larger than any invoice line of ``amount``."""
    return [replace(g, balance=amount + 1) for g in grants]


def credit_transactions(*, account: Account, limit: int = 50) -> list[CreditBalanceTransaction]:
    """The account's credit balance transactions as mirrored from Stripe, newest first."""
    return list(
        CreditBalanceTransaction.objects.filter(account=account)
        .select_related("grant")
        .order_by("-effective_at", "-id")[:limit]
    )
