"""Revenue recognition for billing credits (prepaid and promotional): pure, no database.

Stripe's billing credits (credit grants) are applied to metered invoice lines when the
invoice is finalized; the line's ``amount`` stays gross and its
``pretax_credit_amounts`` (type ``credit_balance_transaction``) say how much credit was
applied (https://docs.stripe.com/billing/subscriptions/usage-based/billing-credits,
https://docs.stripe.com/changelog/acacia/2024-10-28/billing-credits-invoice). Which grant a
credit came from, and so its category, is the ``credits_applied`` credit balance
transaction. Stripe's Revenue Recognition documents no treatment of credit grants; this
is Meterdesk's (ASC 606 / IFRS 15: a prepayment for future usage is a contract liability;
consideration the customer does not use is breakage):

- **Credits sold**: a paid grant's purchase invoice (``CreditGrant.purchase_invoice_id``)
  is not ordinary revenue. When it is finalized: Dr Accounts receivable / Cr Prepaid
  credits (deferred) for the grant's ``purchase_amount``; the invoice is left out of the
  ordinary revenue lines.
- **Paid credits consumed**: the part of a metered line paid by a paid grant is earned
  with the usage that burns it, by UTC day, with the same weights as the line (usage per
  day, see :mod:`revenue.schedule`): Dr Prepaid credits / Cr Revenue. The rest of the line
  (what is billed, net of discounts and credits) follows the ordinary rules (deferred or
  unbilled, :mod:`revenue.waterfall`).
- **Promotional credits**: the part paid by a promotional grant is revenue recognized
  gross by day with the line, and the same amount is a discount: Dr Promotional credits
  (contra-revenue) / Cr Revenue. Revenue is shown gross with a discount column; net
  revenue = gross revenue − promotional discount.
- **Breakage**: what is left of a paid grant when it expires (its ``credits_expired``
  debit; also ``credits_voided``: the obligation ends either way) is earned on that day:
  Dr Prepaid credits / Cr Revenue (breakage). A promotional grant's expiry is no entry.
- **Invoice voided**: a voided invoice leaves the report (it was never billed), and with
  it the credits applied to its lines; a ``credits_application_invoice_voided`` credit
  (Stripe reinstates the credits: https://docs.stripe.com/changelog/acacia/2024-12-18/billing-credits-invoice-voiding)
  reverses what is left of an application, should the mirror still show the invoice.
- **Purchase price ≠ credits** (a discounted top-up): money is recognized in proportion,
  ``consumed × purchase_amount / amount``, by the floors of the *cumulative* exact share
  (the rounding rule of :mod:`revenue.schedule`), in the order the grant was used
  (applications by finalization, then expiry). What a paid grant earns through
  consumption and breakage therefore adds up to its ``purchase_amount`` exactly once it is
  used up or expired, and the prepaid balance never ends below zero.

Everything is keyed by currency (a grant and the invoices it applies to share one).

Not covered: the open period's accrual (usage not invoiced yet, priced by the pricing
engine) stays gross in unbilled receivables even when credits will pay for it; the split
into prepaid consumption / promotional discount happens once the invoice is finalized
and mirrored. Paid credits consumed by usage before their purchase invoice is finalized
make the prepaid balance negative until it is (the report warns).

Worked example (USD, cents). A $100 paid grant is bought on 10 Jan (purchase invoice
finalized 10 Jan) and a $20 promotional grant is given. January's metered line is $150
(usage 1..31 Jan), finalized 1 Feb with $20 promotional and $100 paid credit applied, so
$30 is billed. A second paid grant of $50 bought 5 Feb pays $10 of February's usage
(invoiced 1 Mar, nothing billed) and expires on 15 Mar with $40 left.

========  ======  ======  ========  ========  =======  ========  ======  ========  =======
month     billed  recogn  consumed  discount  breakg.  revenue   net     prepaid   unbilled
========  ======  ======  ========  ========  =======  ========  ======  ========  =======
2026-01        0   3,000    10,000     2,000        0    15,000  13,000         0    3,000
2026-02    3,000       0     1,000         0        0     1,000   1,000     4,000        0
2026-03        0       0         0         0    4,000     4,000   4,000         0        0
========  ======  ======  ========  ========  =======  ========  ======  ========  =======

Credits sold: 10,000 in January, 5,000 in February. January's journal: Dr AR / Cr Prepaid
10,000 (sold); Dr Prepaid / Cr Revenue 10,000 (consumed); Dr Promotional / Cr Revenue
2,000; Dr Unbilled / Cr Revenue 3,000 (the billed part, invoiced later): 25,000 = 25,000.
Prepaid movement 10,000 − 10,000 − 0 = 0. March: Dr Prepaid / Cr Revenue 4,000 (breakage).
Had the $50 grant been bought for $45: its $10 used earns floor(1,000 × 4,500 / 5,000) =
900 and breakage floor(5,000 × 4,500 / 5,000) − 900 = 3,600: 4,500 in all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time

from revenue.schedule import (
    RevenueLine,
    ScheduleDay,
    allocate,
    line_weights,
    utc_day,
    weighted_schedule,
)

PAID, PROMOTIONAL = "paid", "promotional"

# Kinds of the revenue lines this module makes, next to "licensed" and "metered".
CREDITS_SOLD = "credits_sold"  # a paid grant's purchase: into prepaid credits
PAID_CREDITS = "paid_credits"  # paid credits consumed by a line's usage
PROMOTIONAL_CREDITS = "promotional_credits"  # promotional credits on a line (discount)
BREAKAGE = "breakage"  # a paid grant's balance at expiry
CREDIT_KINDS = frozenset({CREDITS_SOLD, PAID_CREDITS, PROMOTIONAL_CREDITS, BREAKAGE})


@dataclass(frozen=True, slots=True)
class Grant:
    """What revenue needs of a credit grant; amounts in minor units of ``currency``."""

    key: str
    category: str  # PAID | PROMOTIONAL
    currency: str
    amount: int  # credits granted
    purchase_amount: int | None = None  # what the customer pays (paid grants)
    purchase_invoice_id: str = ""
    account_id: int | None = None
    name: str = ""

    @property
    def price(self) -> int:
        """What the credits cost: the purchase amount (paid), else their face value."""
        if self.category == PAID and self.purchase_amount is not None:
            return self.purchase_amount
        return self.amount


@dataclass(frozen=True, slots=True)
class Sale:
    """A paid grant's purchase invoice, finalized on ``billed_on``."""

    grant: str
    invoice_id: str
    billed_on: date


@dataclass(frozen=True, slots=True)
class Application:
    """Credits of ``grant`` applied to an invoice line (``line`` is the line's ordinary
    revenue line: its period, usage weights, invoice and finalization date). ``grant``
    is "" when the credit balance transaction is not known (not synced yet)."""

    grant: str
    amount: int
    line: RevenueLine
    applied_at: datetime
    transaction_id: str = ""


@dataclass(frozen=True, slots=True)
class Expiry:
    """What was left of ``grant`` when it expired (or was voided), effective ``at``."""

    grant: str
    amount: int
    at: datetime
    transaction_id: str = ""


def money_for_credits(grant: Grant, used: Sequence[int]) -> list[int]:
    """What each successive use of ``grant`` (credits, in order) earns, in money: the
    difference of the floors of the cumulative share ``price × used so far / amount``.
    Once ``sum(used) == grant.amount`` the results add up to ``grant.price`` exactly."""
    used = list(used)
    if grant.price == grant.amount or not used:
        return used
    # allocate() floors the cumulative shares: price × (used so far) / amount, with what
    # is still unused as the last weight. (More used than granted cannot happen in
    # Stripe; should the records say so, the uses share the whole price.)
    left = grant.amount - sum(used)
    return allocate(grant.price, [*used, left])[:-1] if left >= 0 else allocate(grant.price, used)


def _moment_line(
    *, kind: str, currency: str, amount: int, at: datetime, ident: str, account_id, text: str
) -> RevenueLine:
    return RevenueLine(
        invoice_id=ident if kind == CREDITS_SOLD else "",
        line_id=ident,
        currency=currency,
        amount=amount,
        period_start=at,
        period_end=at,
        billed_on=utc_day(at),
        account_id=account_id,
        kind=kind,
        gross=amount,
        description=text,
    )


def credit_revenue_lines(
    *,
    grants: Mapping[str, Grant],
    sales: Iterable[Sale] = (),
    applications: Iterable[Application] = (),
    expiries: Iterable[Expiry] = (),
) -> tuple[list[RevenueLine], list[str]]:
    """The credit lines (kinds :data:`CREDIT_KINDS`) for the waterfall, and warnings.

    - a sale: a ``CREDITS_SOLD`` line of the grant's purchase amount on the day its
      purchase invoice was finalized;
    - an application of a paid grant: a ``PAID_CREDITS`` line over the applied line's
      days and weights, of the money those credits cost (:func:`money_for_credits`);
    - an application of a promotional grant (or of an unknown one, with a warning): a
      ``PROMOTIONAL_CREDITS`` line of the credits applied, over the same days;
    - the expiry of a paid grant: a ``BREAKAGE`` line on its day, of what is left of the
      money. A promotional grant's expiry is nothing.
    """
    result: list[RevenueLine] = []
    warnings: list[str] = []
    sold: set[str] = set()
    for sale in sales:
        grant = grants[sale.grant]
        sold.add(grant.key)
        at = datetime.combine(sale.billed_on, time(0), tzinfo=UTC)
        result.append(
            _moment_line(kind=CREDITS_SOLD, currency=grant.currency, amount=grant.price, at=at,
                         ident=sale.invoice_id, account_id=grant.account_id,
                         text=f"Credits sold: {grant.name or grant.key}")
        )  # fmt: skip

    # Per grant, its uses in order: applications by finalization, then expiries.
    uses: dict[str, list[tuple[tuple, Application | Expiry]]] = {}
    for app in applications:
        if app.amount == 0:
            continue
        grant = grants.get(app.grant)
        if grant is None or grant.category != PAID:
            if grant is None:
                warnings.append(
                    f"invoice {app.line.invoice_id} line {app.line.line_id}: credit "
                    f"{app.transaction_id or '?'} is from an unknown grant (not synced); "
                    "shown as a promotional discount"
                )
            result.append(
                replace(
                    app.line,
                    kind=PROMOTIONAL_CREDITS,
                    amount=app.amount,
                    gross=app.amount,
                    discount=0,
                    description=f"Promotional credits: {app.line.description}",
                )
            )
            continue
        uses.setdefault(grant.key, []).append(((app.applied_at, 0, app.transaction_id), app))
    for expiry in expiries:
        grant = grants.get(expiry.grant)
        if grant is None or grant.category != PAID or expiry.amount == 0:
            continue
        uses.setdefault(grant.key, []).append(((expiry.at, 1, expiry.transaction_id), expiry))

    for key, events in uses.items():
        grant = grants[key]
        if key not in sold and grant.price:
            warnings.append(
                f"paid grant {grant.name or key}: used but its purchase invoice "
                f"{grant.purchase_invoice_id or '(none)'} is not a finalized invoice here"
            )
        events.sort(key=lambda pair: pair[0])
        money = money_for_credits(grant, [event.amount for _, event in events])
        for (_, event), earned in zip(events, money, strict=True):
            if isinstance(event, Application):
                result.append(
                    replace(
                        event.line,
                        kind=PAID_CREDITS,
                        amount=earned,
                        gross=event.amount,
                        discount=earned - event.amount,
                        description=f"Paid credits: {event.line.description}",
                    )
                )
            else:
                result.append(
                    _moment_line(kind=BREAKAGE, currency=grant.currency, amount=earned,
                                 at=event.at, ident=event.transaction_id or key,
                                 account_id=grant.account_id,
                                 text=f"Breakage: {grant.name or key} expired")
                )  # fmt: skip
    return result, warnings


def credit_line_schedule(line: RevenueLine) -> list[ScheduleDay]:
    """A credit line's amount per UTC day: a consumption (paid or promotional) with the
    weights of the line it was applied to (usage per day, else ratable); a sale or a
    breakage on its one day."""
    if line.kind in (PAID_CREDITS, PROMOTIONAL_CREDITS):
        return weighted_schedule(line.amount, line_weights(replace(line, kind="metered")))
    return [ScheduleDay(line.billed_on, line.amount)]
