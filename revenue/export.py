"""The waterfall as CSV, and a month's journal as a text table (for the command).

Amounts in the CSV are integers in the currency's minor unit (cents for USD; exact, easy
to load in a spreadsheet or a ledger import), and the header says so: ``billed_minor_units``
next to a ``currency`` column. The page and the command show them formatted.

The billing-credit columns (credits sold, consumed, breakage, promotional discount, net
revenue, prepaid credits balance) and ledger accounts (prepaid credits, promotional
credits) appear only when there is credit activity: in the CSV when any currency of the
report has some (the others' rows then show zeros), in the command per currency.
"""

from __future__ import annotations

import csv
import io

from billing.money import format_money
from revenue.selectors import RevenueReport
from revenue.waterfall import (
    ACCOUNTS,
    ALL_COLUMNS,
    BASE_ACCOUNTS,
    COLUMN_LABELS,
    COLUMNS,
    Journal,
    columns_for,
    has_credit_activity,
    journal_for,
)


def csv_header(columns=COLUMNS) -> tuple[str, ...]:
    # The unit is in every amount's column name: integer minor units of the row's currency.
    return ("currency", "month", *(f"{column}_minor_units" for column in columns))


CSV_HEADER = csv_header(COLUMNS)


def report_has_credit_activity(report: RevenueReport) -> bool:
    return any(has_credit_activity(rows) for rows in report.by_currency.values())


def waterfall_csv(report: RevenueReport) -> str:
    columns = ALL_COLUMNS if report_has_credit_activity(report) else COLUMNS
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(csv_header(columns))
    for currency in report.currencies:
        for fig in report.by_currency[currency]:
            writer.writerow([currency, fig.month, *fig.as_row(columns).values()])
    return out.getvalue()


def month_journal(report: RevenueReport, *, currency: str, month: str) -> Journal:
    return journal_for(
        report.figures_for(currency, month), previous=report.previous(currency, month)
    )


def _table(rows: list[list[str]], *, right: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  " + "  ".join(cells).rstrip())
    return lines


def render_month(report: RevenueReport, *, currency: str, month: str) -> tuple[str, Journal]:
    """The month's journal entries, the totals per ledger account and the waterfall
    figures, for one currency."""
    journal = month_journal(report, currency=currency, month=month)
    fig = report.figures_for(currency, month)
    columns = columns_for(report.by_currency.get(currency, []))
    credits = columns != COLUMNS

    def money(amount: int) -> str:
        return format_money(amount, currency)

    out = [f"{currency.upper()} {month}", "", "Journal entries"]
    rows = [["Entry", "Debit", "Credit", "Amount"]]
    rows += [[e.description, e.debit, e.credit, money(e.amount)] for e in journal.entries]
    if not journal.entries:
        rows.append(["(no entries)", "", "", ""])
    out += _table(rows, right={3})
    out += ["", "Totals per account"]
    rows = [["Account", "Debit", "Credit"]]
    for account in ACCOUNTS if credits else BASE_ACCOUNTS:
        debit, credit = journal.by_account()[account]
        rows.append([account, money(debit), money(credit)])
    rows.append(["Total", money(journal.total_debits), money(journal.total_credits)])
    out += _table(rows, right={1, 2})
    status = "balanced" if journal.balanced else "NOT BALANCED"
    out.append(f"  Debits {money(journal.total_debits)} = credits "
               f"{money(journal.total_credits)}: {status}")  # fmt: skip
    out.extend(f"  ! {problem}" for problem in journal.problems)
    out += ["", "Waterfall"]
    out += _table([[COLUMN_LABELS[c], money(fig.as_row(columns)[c])] for c in columns], right={1})
    return "\n".join(out) + "\n", journal
