"""The month-by-month revenue waterfall and its journal entries (pure, no database).

Everything is keyed by currency; no amount is ever added across currencies.

For each currency and month ``M``:

- **billed**: lines of invoices finalized in ``M`` (net of discounts and credits);
- **recognized**: the lines' schedule days that fall in ``M``, whenever the invoice
  was finalized. Days of a line that fall *before* its invoice's month (usage billed
  in arrears) are earned but not yet billed: they sit in *unbilled receivables* until
  the invoice is finalized, when they are moved against deferred revenue;
- **accrued**: usage of the open (not yet invoiced) period, priced by the pricing
  engine and spread over the days it was consumed (an estimate until invoiced);
- **revenue** = recognized + accrued;
- **deferred balance** at the end of ``M`` = billed to date − recognized to date *on
  invoices finalized by then* (never negative: a line never earns more than its amount);
- **unbilled balance** at the end of ``M`` = earned to date on lines not yet invoiced
  by then, plus the open-period estimate to date.

Billing credits (:mod:`revenue.credits`, lines of the credit kinds):

- **credits sold**: paid grants' purchase invoices finalized in ``M`` (not in billed);
- **credits consumed**: paid credits earned in ``M`` with the usage that burnt them;
- **breakage**: paid credits that expired in ``M``;
- **promotional discount**: promotional credits on usage of ``M``, recognized gross
  and taken off again as a contra-revenue discount;
- **prepaid credits balance** at the end of ``M`` = sold − consumed − breakage to date.

**revenue** (gross) = recognized + accrued + credits consumed + breakage + promotional
discount; **net revenue** = revenue − promotional discount.

Journal entries for ``M`` (double entry, so debits equal credits):

1. invoices finalized: Dr Accounts receivable / Cr Deferred revenue (billed);
2. earlier months' unbilled revenue now invoiced: Dr Deferred revenue / Cr Unbilled
   receivables (the reversal of the accrual when billed);
3. revenue from deferred: Dr Deferred revenue / Cr Revenue;
4. revenue earned on lines invoiced in a later month: Dr Unbilled receivables / Cr Revenue;
5. open-period usage (estimate): Dr Unbilled receivables / Cr Revenue;
6. credits sold: Dr Accounts receivable / Cr Prepaid credits (deferred);
7. paid credits consumed: Dr Prepaid credits / Cr Revenue;
8. breakage: Dr Prepaid credits / Cr Revenue;
9. promotional credits: Dr Promotional credits (contra-revenue) / Cr Revenue.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

from revenue.credits import (
    BREAKAGE,
    CREDIT_KINDS,
    CREDITS_SOLD,
    PAID_CREDITS,
    PROMOTIONAL_CREDITS,
    credit_line_schedule,
)
from revenue.schedule import (
    RevenueLine,
    ScheduleDay,
    line_schedule,
    month_of,
    schedule_by_month,
    weighted_schedule,
)

AR = "Accounts receivable"
DEFERRED = "Deferred revenue"
REVENUE = "Revenue"
UNBILLED = "Unbilled receivables"
PREPAID = "Prepaid credits (deferred)"
PROMOTIONAL = "Promotional credits (contra-revenue)"
BASE_ACCOUNTS = (AR, UNBILLED, DEFERRED, REVENUE)
CREDIT_ACCOUNTS = (PREPAID, PROMOTIONAL)
ACCOUNTS = BASE_ACCOUNTS + CREDIT_ACCOUNTS

# The figures of one month, in the order of the page, the CSV and the command.
COLUMNS = ("billed", "recognized", "accrued", "revenue", "deferred_end", "unbilled_end")
# Shown after them for a currency with any credit activity (see ``columns_for``).
CREDIT_COLUMNS = (
    "credits_sold",
    "credits_consumed",
    "breakage",
    "promotional_discount",
    "net_revenue",
    "prepaid_credits_end",
)
ALL_COLUMNS = COLUMNS + CREDIT_COLUMNS
COLUMN_LABELS = {
    "billed": "Billed",
    "recognized": "Recognized",
    "accrued": "Accrued (open period)",
    "revenue": "Revenue",
    "deferred_end": "Deferred balance",
    "unbilled_end": "Unbilled balance",
    "credits_sold": "Credits sold",
    "credits_consumed": "Credits consumed",
    "breakage": "Breakage",
    "promotional_discount": "Promotional discount",
    "net_revenue": "Net revenue",
    "prepaid_credits_end": "Prepaid credits balance",
}


@dataclass(frozen=True, slots=True)
class Accrual:
    """Usage consumed in an open period and not invoiced yet: ``amount`` (pricing
    engine, minor units) spread over ``weights`` (usage, or seconds, per UTC day)."""

    currency: str
    amount: int
    weights: tuple[tuple[date, int], ...]
    account_id: int | None = None
    description: str = ""

    def schedule(self) -> list[ScheduleDay]:
        return weighted_schedule(self.amount, self.weights)


@dataclass(slots=True)
class MonthFigures:
    currency: str
    month: str  # "YYYY-MM"
    billed: int = 0
    recognized: int = 0
    recognized_from_deferred: int = 0
    earned_invoiced_later: int = 0
    accrual_reversed: int = 0
    accrued: int = 0
    deferred_end: int = 0
    unbilled_end: int = 0
    credits_sold: int = 0
    credits_consumed: int = 0
    breakage: int = 0
    promotional_discount: int = 0
    prepaid_credits_end: int = 0

    @property
    def revenue(self) -> int:
        """Gross revenue: promotional credits are in it (and in the discount)."""
        return (
            self.recognized
            + self.accrued
            + self.credits_consumed
            + self.breakage
            + self.promotional_discount
        )

    @property
    def net_revenue(self) -> int:
        return self.revenue - self.promotional_discount

    @property
    def has_credit_activity(self) -> bool:
        return any(
            (
                self.credits_sold,
                self.credits_consumed,
                self.breakage,
                self.promotional_discount,
                self.prepaid_credits_end,
            )
        )

    def as_row(self, columns: Sequence[str] = COLUMNS) -> dict[str, int]:
        return {column: getattr(self, column) for column in columns}


def has_credit_activity(rows: Iterable[MonthFigures]) -> bool:
    """Whether any month of a currency has credit activity (sold, consumed, breakage,
    promotional discount or a prepaid balance)."""
    return any(fig.has_credit_activity for fig in rows)


def columns_for(rows: Iterable[MonthFigures]) -> tuple[str, ...]:
    """The columns to show for a currency: the credit columns only when it has any
    credit activity."""
    return ALL_COLUMNS if has_credit_activity(rows) else COLUMNS


@dataclass(frozen=True, slots=True)
class JournalEntry:
    description: str
    debit: str
    credit: str
    amount: int


@dataclass
class Journal:
    currency: str
    month: str
    entries: list[JournalEntry]
    problems: list[str] = field(default_factory=list)

    @property
    def total_debits(self) -> int:
        return sum(debits for debits, _ in self.by_account().values())

    @property
    def total_credits(self) -> int:
        return sum(credits for _, credits in self.by_account().values())

    def by_account(self) -> dict[str, tuple[int, int]]:
        """(debits, credits) per ledger account."""
        totals = {account: [0, 0] for account in ACCOUNTS}
        for e in self.entries:
            totals[e.debit][0] += e.amount
            totals[e.credit][1] += e.amount
        return {account: (d, c) for account, (d, c) in totals.items()}

    @property
    def balanced(self) -> bool:
        return self.total_debits == self.total_credits and not self.problems


def _next_month(month: str) -> str:
    year, mon = int(month[:4]), int(month[5:7])
    return f"{year + mon // 12:04d}-{mon % 12 + 1:02d}"


def month_range(first: str, last: str) -> list[str]:
    months = [first]
    while months[-1] < last:
        months.append(_next_month(months[-1]))
    return months


def waterfall(
    *,
    lines: Iterable[RevenueLine],
    accruals: Iterable[Accrual] = (),
    as_of: date | None = None,
) -> dict[str, list[MonthFigures]]:
    """Per currency, every month from the first to the last with any activity.

    ``as_of`` (the report's date): schedule days after it are not earned yet. A fee
    billed in advance for a period that runs past today stays deferred for the days not
    reached; it is recognized day by day as they pass, never in a month still to come.
    """
    figures: dict[tuple[str, str], MonthFigures] = {}

    def at(currency: str, month: str) -> MonthFigures:
        key = (currency, month)
        if key not in figures:
            figures[key] = MonthFigures(currency=currency, month=month)
        return figures[key]

    for line in lines:
        if line.kind in CREDIT_KINDS:
            _add_credit_line(at(line.currency, month_of(line.billed_on)), line, at, as_of)
            continue
        billed_month = month_of(line.billed_on)
        at(line.currency, billed_month).billed += line.amount
        earned = [d for d in line_schedule(line) if as_of is None or d.day <= as_of]
        for month, amount in schedule_by_month(earned).items():
            fig = at(line.currency, month)
            fig.recognized += amount
            if month >= billed_month:
                fig.recognized_from_deferred += amount
            else:
                fig.earned_invoiced_later += amount
                at(line.currency, billed_month).accrual_reversed += amount
    for accrual in accruals:
        for month, amount in schedule_by_month(accrual.schedule()).items():
            at(accrual.currency, month).accrued += amount

    result: dict[str, list[MonthFigures]] = {}
    for currency in sorted({c for c, _ in figures}):
        months = sorted(m for c, m in figures if c == currency)
        deferred = unbilled = prepaid = 0
        rows = []
        for month in month_range(months[0], months[-1]):
            fig = at(currency, month)
            deferred += fig.billed - fig.accrual_reversed - fig.recognized_from_deferred
            unbilled += fig.earned_invoiced_later + fig.accrued - fig.accrual_reversed
            prepaid += fig.credits_sold - fig.credits_consumed - fig.breakage
            fig.deferred_end, fig.unbilled_end = deferred, unbilled
            fig.prepaid_credits_end = prepaid
            rows.append(fig)
        result[currency] = rows
    return result


def _add_credit_line(billed: MonthFigures, line: RevenueLine, at, as_of: date | None) -> None:
    """A credit line (:mod:`revenue.credits`) into the months: a sale in the month its
    invoice was finalized; consumption, promotional discount and breakage by the days
    they are earned (none after ``as_of``)."""
    if line.kind == CREDITS_SOLD:
        billed.credits_sold += line.amount
        return
    field_name = {
        PAID_CREDITS: "credits_consumed",
        PROMOTIONAL_CREDITS: "promotional_discount",
        BREAKAGE: "breakage",
    }[line.kind]
    earned = [d for d in credit_line_schedule(line) if as_of is None or d.day <= as_of]
    for month, amount in schedule_by_month(earned).items():
        fig = at(line.currency, month)
        setattr(fig, field_name, getattr(fig, field_name) + amount)


def _entry(description: str, debit: str, credit: str, amount: int) -> JournalEntry | None:
    if amount == 0:
        return None
    if amount < 0:  # a net credit: the same entry the other way round, positive amount
        return JournalEntry(description, credit, debit, -amount)
    return JournalEntry(description, debit, credit, amount)


def journal_for(fig: MonthFigures, *, previous: MonthFigures | None = None) -> Journal:
    """The month's journal entries, with a tie-out against the waterfall: revenue
    credited equals the month's (gross) revenue and, less the promotional discount, its
    net revenue; the net movements of deferred revenue, unbilled receivables and prepaid
    credits equal the changes of their balances, and prepaid credits move by sold −
    consumed − breakage."""
    candidates = [
        _entry("Invoices finalized", AR, DEFERRED, fig.billed),
        _entry("Earlier unbilled revenue now invoiced", DEFERRED, UNBILLED, fig.accrual_reversed),
        _entry("Revenue recognized from deferred", DEFERRED, REVENUE, fig.recognized_from_deferred),
        _entry("Revenue earned, invoiced later", UNBILLED, REVENUE, fig.earned_invoiced_later),
        _entry("Open-period usage accrued (estimate)", UNBILLED, REVENUE, fig.accrued),
        _entry("Prepaid credits sold", AR, PREPAID, fig.credits_sold),
        _entry("Paid credits consumed", PREPAID, REVENUE, fig.credits_consumed),
        _entry("Breakage: paid credits expired", PREPAID, REVENUE, fig.breakage),
        _entry("Promotional credits (discount)", PROMOTIONAL, REVENUE, fig.promotional_discount),
    ]
    journal = Journal(fig.currency, fig.month, [e for e in candidates if e is not None])
    accounts = journal.by_account()
    prev_deferred = previous.deferred_end if previous else 0
    prev_unbilled = previous.unbilled_end if previous else 0
    prev_prepaid = previous.prepaid_credits_end if previous else 0
    revenue = accounts[REVENUE][1] - accounts[REVENUE][0]
    prepaid = accounts[PREPAID][1] - accounts[PREPAID][0]
    promotional = accounts[PROMOTIONAL][0] - accounts[PROMOTIONAL][1]
    checks = [
        ("revenue", revenue, fig.revenue),
        ("net revenue", revenue - promotional, fig.net_revenue),
        ("promotional credits (discount)", promotional, fig.promotional_discount),
        ("prepaid credits movement", prepaid, fig.prepaid_credits_end - prev_prepaid),
        (
            "prepaid credits movement = sold - consumed - breakage",
            prepaid,
            fig.credits_sold - fig.credits_consumed - fig.breakage,
        ),
        (
            "deferred revenue movement",
            accounts[DEFERRED][1] - accounts[DEFERRED][0],
            fig.deferred_end - prev_deferred,
        ),
        (
            "unbilled receivables movement",
            accounts[UNBILLED][0] - accounts[UNBILLED][1],
            fig.unbilled_end - prev_unbilled,
        ),
        ("accounts receivable", accounts[AR][0] - accounts[AR][1], fig.billed + fig.credits_sold),
    ]
    for name, journal_amount, waterfall_amount in checks:
        if journal_amount != waterfall_amount:
            journal.problems.append(
                f"{name}: journal {journal_amount} != waterfall {waterfall_amount}"
            )
    return journal


def journals(rows: Sequence[MonthFigures]) -> list[Journal]:
    """Journals of consecutive months of one currency (as ``waterfall`` returns them)."""
    out = []
    previous = None
    for fig in rows:
        out.append(journal_for(fig, previous=previous))
        previous = fig
    return out
