"""Stripe billing credits (credit grants) applied to an invoice's rated lines.

A pure function of the invoice's lines, the customer's grants and the invoice's
``period_end``: no database, no clock, no network. It is Meterdesk's own reading of
Stripe's documented rules, written independently of ``stripe_emulator`` (tests compare
the two, so they must never share code).

Sources (see also /work/notes/stripe_credits.md):

- [BC] Billing credits guide,
  https://docs.stripe.com/billing/subscriptions/usage-based/billing-credits
- [API-CG] Credit grant object and create parameters,
  https://docs.stripe.com/api/billing/credit-grant/create
- [CL-prio] https://docs.stripe.com/changelog/acacia/2025-02-24/billing-credits-priority

Rules implemented:

- Only metered lines are credited. [BC] "You can only apply credit grants to
  subscription items that use metered prices"; credits do not apply to "Line items on
  subscription invoices that use licensed prices". Callers pass only subscription
  invoices: [BC] credits do not apply to "One-off invoices that weren't created by a
  subscription".
- Price scope. [API-CG] ``applicability_config.scope`` is either every metered price
  (``price_type=metered``: empty ``price_ids`` here) or a list of prices; [BC] "If the
  price on a subscription item matches one of the credit grant's applicable prices,
  then the credit grant could apply to that item."
- Eligibility, [BC] "Credit grant eligibility": "The invoice's ``period_end`` is on or
  after the credit grant's ``effective_at`` time" (``effective_at`` "defaults to the
  current timestamp", [API-CG], so ``created`` when it is None); "The invoice's
  ``period_end`` occurs before the credit grant's ``expires_at`` time, if set" (strict);
  "The credit grant has an available balance when the invoice finalizes"; "The credit
  grant's currency matches the invoice currency."
- Order among grants, [BC] "Multiple credit grants": priority (lower number first,
  [CL-prio] "lower values indicating higher priority"), then earlier ``expires_at``,
  then ``promotional`` before ``paid``, then earlier ``effective_at``, then earlier
  ``created``. Two additions of ours, not Stripe's: a grant without ``expires_at``
  sorts after every grant with one (Stripe does not say where it goes), and the grant
  id breaks any remaining tie so the order is total and repeatable.
- Across lines, [BC]: "If you can apply a credit grant to multiple lines on the same
  invoice, the credit applies to the lines in the order they appear on the invoice."
  Each line, in invoice order, takes from the grants in the order above until the
  line is at zero or the grants are spent; a line is never credited below zero.
- Credits are pretax and apply after discounts, [BC]: "Credit grants apply to invoices
  after discounts, but before taxes and the ``invoice_credit_balance``." The engine's
  line amounts carry no discounts or taxes, so ``total = subtotal - credited``.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from billing.pricing.types import LineItem

CreditCategory = Literal["paid", "promotional"]

_CATEGORIES = ("paid", "promotional")
# [BC] "Credit grants with the `promotional` category apply first."
_CATEGORY_RANK = {"promotional": 0, "paid": 1}
# [API-CG] "The highest priority is 0 and the lowest is 100"; the default is 50.
_PRIORITY_MIN = 0
_PRIORITY_MAX = 100
_DEFAULT_PRIORITY = 50
# Placeholder in the sort key of grants without expires_at (they already sort last).
_NO_EXPIRY = datetime.max.replace(tzinfo=UTC)


def _check_aware(name: str, value: object, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, datetime):
        kind = "a datetime or None" if optional else "a datetime"
        raise TypeError(f"{name} must be {kind}, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, not {value!r}")


def _check_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")


def _check_currency(name: str, value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if len(value) != 3 or not value.isalpha() or value != value.lower():
        raise ValueError(f"{name} must be a lowercase ISO code, not {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class CreditGrantSpec:
    """One credit grant as the engine needs it.

    ``balance`` is the grant's available balance in minor units (>= 0), not its
    original amount. ``effective_at`` None means effective since ``created`` (Stripe's
    default, [API-CG]); ``expires_at`` None means it never expires. ``price_ids``
    empty means the grant applies to every metered price (``price_type=metered``),
    otherwise only to lines of those prices. Datetimes must be timezone-aware.
    """

    id: str
    currency: str
    category: CreditCategory
    balance: int
    created: datetime
    priority: int = _DEFAULT_PRIORITY
    effective_at: datetime | None = None
    expires_at: datetime | None = None
    price_ids: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"id must be a non-empty str, not {self.id!r}")
        _check_currency("currency", self.currency)
        if self.category not in _CATEGORIES:
            raise ValueError(f"category must be 'paid' or 'promotional', not {self.category!r}")
        _check_int("balance", self.balance)
        if self.balance < 0:
            raise ValueError(f"balance must be >= 0, not {self.balance}")
        _check_aware("created", self.created)
        _check_int("priority", self.priority)
        if not _PRIORITY_MIN <= self.priority <= _PRIORITY_MAX:
            raise ValueError(
                f"priority must be between {_PRIORITY_MIN} and {_PRIORITY_MAX}, not {self.priority}"
            )
        _check_aware("effective_at", self.effective_at, optional=True)
        _check_aware("expires_at", self.expires_at, optional=True)
        if not isinstance(self.price_ids, frozenset):
            raise TypeError(
                f"price_ids must be a frozenset of str, not {type(self.price_ids).__name__}"
            )
        for price_id in self.price_ids:
            if not isinstance(price_id, str) or not price_id:
                raise ValueError(f"price_ids must hold non-empty str, not {price_id!r}")

    @property
    def effective_from(self) -> datetime:
        """When the grant becomes usable: ``effective_at``, else ``created``."""
        return self.effective_at if self.effective_at is not None else self.created

    def applies_to(self, price_id: str) -> bool:
        """Whether the grant's scope covers ``price_id`` (any metered price when empty)."""
        return not self.price_ids or price_id in self.price_ids


@dataclass(frozen=True, slots=True, kw_only=True)
class CreditApplication:
    """``amount`` minor units of grant ``grant_id`` applied to line ``line_index``.

    Stripe records one ``credits_applied`` debit per grant and invoice line item
    ([BC]; ``credit_balance_transaction.debit.credits_applied.invoice_line_item``).
    """

    grant_id: str
    line_index: int
    price_id: str
    amount: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CreditedInvoice:
    """An invoice's lines with the credits applied to them.

    ``subtotal`` is the sum of line amounts, ``credited`` the sum of applications,
    ``total`` = ``subtotal`` - ``credited`` (credits are pretax, [BC]); ``remaining``
    maps every grant given (eligible or not) to its balance after this invoice.
    """

    lines: tuple[LineItem, ...]
    applications: tuple[CreditApplication, ...]
    subtotal: int
    credited: int
    total: int
    remaining: dict[str, int] = field(default_factory=dict)

    def line_credits(self) -> tuple[int, ...]:
        """Credits applied per line, in line order (a line's pretax credit amounts)."""
        per_line = [0] * len(self.lines)
        for application in self.applications:
            per_line[application.line_index] += application.amount
        return tuple(per_line)


def _order_key(grant: CreditGrantSpec) -> tuple[int, bool, datetime, int, datetime, datetime, str]:
    # [BC] "Multiple credit grants", in its order: priority (lower first), expires_at
    # (earlier first), promotional before paid, effective_at (earlier first), created
    # (earlier first).
    # ASSUMPTION (Stripe does not say): a grant without expires_at sorts after every
    # grant that has one, as if it expired at infinity.
    # Ours: the id breaks remaining ties so the order is total.
    # Aware datetimes compare as instants, whatever their zone.
    never_expires = grant.expires_at is None
    return (
        grant.priority,
        never_expires,
        grant.expires_at if grant.expires_at is not None else _NO_EXPIRY,
        _CATEGORY_RANK[grant.category],
        grant.effective_from,
        grant.created,
        grant.id,
    )


def _check_grants(grants: Iterable[CreditGrantSpec]) -> list[CreditGrantSpec]:
    if isinstance(grants, (str, bytes)) or not isinstance(grants, Iterable):
        kind = type(grants).__name__
        raise TypeError(f"grants must be a sequence of CreditGrantSpec, not {kind}")
    checked = list(grants)
    seen: set[str] = set()
    for grant in checked:
        if not isinstance(grant, CreditGrantSpec):
            raise TypeError(f"grants must hold CreditGrantSpec, not {type(grant).__name__}")
        if grant.id in seen:
            raise ValueError(f"grant {grant.id} is given twice")
        seen.add(grant.id)
    return checked


def credit_order(grants: Iterable[CreditGrantSpec]) -> list[CreditGrantSpec]:
    """The grants in the order Stripe applies them ([BC] "Multiple credit grants").

    Priority ascending (0 first), earlier ``expires_at`` first (no expiry last: our
    assumption), ``promotional`` before ``paid``, earlier ``effective_at`` (else
    ``created``) first, earlier ``created`` first, then id.
    """
    return sorted(_check_grants(grants), key=_order_key)


def _is_eligible(grant: CreditGrantSpec, *, currency: str, period_end: datetime) -> bool:
    # [BC] "Credit grant eligibility"
    if grant.currency != currency:
        return False
    if grant.balance <= 0:  # "has an available balance when the invoice finalizes"
        return False
    if grant.effective_from > period_end:  # "period_end is on or after ... effective_at"
        return False
    # "period_end occurs before the credit grant's expires_at time, if set": strict
    return grant.expires_at is None or period_end < grant.expires_at


def eligible_grants(
    *, grants: Iterable[CreditGrantSpec], currency: str, period_end: datetime
) -> list[CreditGrantSpec]:
    """Grants that may credit an invoice in ``currency`` ending ``period_end``, in order.

    Eligible: same currency, a positive balance, effective at or before ``period_end``
    and, if it expires, expiring strictly after ``period_end`` ([BC]). The price scope
    is per line and checked by :func:`apply_credits`.
    """
    _check_currency("currency", currency)
    _check_aware("period_end", period_end)
    return [
        grant
        for grant in credit_order(grants)
        if _is_eligible(grant, currency=currency, period_end=period_end)
    ]


def _invoice_currency(lines: Sequence[LineItem]) -> str | None:
    currencies = {line.currency for line in lines}
    if len(currencies) > 1:
        raise ValueError(f"all lines of an invoice share one currency, got {sorted(currencies)}")
    return next(iter(currencies), None)


def apply_credits(
    *, lines: Sequence[LineItem], grants: Sequence[CreditGrantSpec], period_end: datetime
) -> CreditedInvoice:
    """Apply ``grants`` to the invoice made of ``lines`` whose period ends ``period_end``.

    Lines in invoice order; each metered line takes from the eligible grants in
    :func:`credit_order` whose scope covers its price, each grant giving as much as
    both its remaining balance and the line's remaining amount allow, so no line goes
    below zero. Licensed lines are never credited.

    Worked example: a $150 metered line, a $100 paid grant and a $20 promotional grant,
    both priority 50: promotional first (2,000), then paid (10,000): credited 12,000,
    total 15,000 - 12,000 = 3,000, both grants left at 0.
    """
    if isinstance(lines, (str, bytes)) or not isinstance(lines, Sequence):
        raise TypeError(f"lines must be a sequence of LineItem, not {type(lines).__name__}")
    for line in lines:
        if not isinstance(line, LineItem):
            raise TypeError(f"lines must hold LineItem, not {type(line).__name__}")
    checked = _check_grants(grants)
    _check_aware("period_end", period_end)
    remaining = {grant.id: grant.balance for grant in checked}
    currency = _invoice_currency(lines)
    ordered = (
        eligible_grants(grants=checked, currency=currency, period_end=period_end)
        if currency is not None
        else []
    )
    applications: list[CreditApplication] = []
    for index, line in enumerate(lines):
        if line.kind != "metered":
            continue
        due = max(line.amount, 0)
        for grant in ordered:
            if due == 0:
                break
            if not grant.applies_to(line.price_id):
                continue
            amount = min(remaining[grant.id], due)
            if amount == 0:
                continue
            remaining[grant.id] -= amount
            due -= amount
            applications.append(
                CreditApplication(
                    grant_id=grant.id, line_index=index, price_id=line.price_id, amount=amount
                )
            )
    subtotal = sum(line.amount for line in lines)
    credited = sum(application.amount for application in applications)
    return CreditedInvoice(
        lines=tuple(lines),
        applications=tuple(applications),
        subtotal=subtotal,
        credited=credited,
        total=subtotal - credited,
        remaining=remaining,
    )
