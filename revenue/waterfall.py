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

Journal entries for ``M`` (double entry, so debits equal credits):

1. invoices finalized: Dr Accounts receivable / Cr Deferred revenue (billed);
2. earlier months' unbilled revenue now invoiced: Dr Deferred revenue / Cr Unbilled
   receivables (the reversal of the accrual when billed);
3. revenue from deferred: Dr Deferred revenue / Cr Revenue;
4. revenue earned on lines invoiced in a later month: Dr Unbilled receivables / Cr Revenue;
5. open-period usage (estimate): Dr Unbilled receivables / Cr Revenue.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

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
ACCOUNTS = (AR, UNBILLED, DEFERRED, REVENUE)

# The figures of one month, in the order of the page, the CSV and the command.
COLUMNS = ("billed", "recognized", "accrued", "revenue", "deferred_end", "unbilled_end")
COLUMN_LABELS = {
    "billed": "Billed",
    "recognized": "Recognized",
    "accrued": "Accrued (open period)",
    "revenue": "Revenue",
    "deferred_end": "Deferred balance",
    "unbilled_end": "Unbilled balance",
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

    @property
    def revenue(self) -> int:
        return self.recognized + self.accrued

    def as_row(self) -> dict[str, int]:
        return {column: getattr(self, column) for column in COLUMNS}


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
        deferred = unbilled = 0
        rows = []
        for month in month_range(months[0], months[-1]):
            fig = at(currency, month)
            deferred += fig.billed - fig.accrual_reversed - fig.recognized_from_deferred
            unbilled += fig.earned_invoiced_later + fig.accrued - fig.accrual_reversed
            fig.deferred_end, fig.unbilled_end = deferred, unbilled
            rows.append(fig)
        result[currency] = rows
    return result


def _entry(description: str, debit: str, credit: str, amount: int) -> JournalEntry | None:
    if amount == 0:
        return None
    if amount < 0:  # a net credit: the same entry the other way round, positive amount
        return JournalEntry(description, credit, debit, -amount)
    return JournalEntry(description, debit, credit, amount)


def journal_for(fig: MonthFigures, *, previous: MonthFigures | None = None) -> Journal:
    """The month's journal entries, with a tie-out against the waterfall: revenue
    credited equals the month's revenue, and the net movements of deferred revenue and
    unbilled receivables equal the changes of their balances."""
    candidates = [
        _entry("Invoices finalized", AR, DEFERRED, fig.billed),
        _entry("Earlier unbilled revenue now invoiced", DEFERRED, UNBILLED, fig.accrual_reversed),
        _entry("Revenue recognized from deferred", DEFERRED, REVENUE, fig.recognized_from_deferred),
        _entry("Revenue earned, invoiced later", UNBILLED, REVENUE, fig.earned_invoiced_later),
        _entry("Open-period usage accrued (estimate)", UNBILLED, REVENUE, fig.accrued),
    ]
    journal = Journal(fig.currency, fig.month, [e for e in candidates if e is not None])
    accounts = journal.by_account()
    prev_deferred = previous.deferred_end if previous else 0
    prev_unbilled = previous.unbilled_end if previous else 0
    checks = [
        ("revenue", accounts[REVENUE][1] - accounts[REVENUE][0], fig.revenue),
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
        ("accounts receivable", accounts[AR][0] - accounts[AR][1], fig.billed),
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
