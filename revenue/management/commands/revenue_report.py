"""``python manage.py revenue_report --month YYYY-MM [--currency usd] [--account ID]``

Prints the month's journal entries per currency (accounts receivable, deferred
revenue, revenue, unbilled receivables; for a currency with billing-credit activity
also prepaid credits and promotional credits, see ``revenue.credits``), their totals
and the month's waterfall figures (with the credit columns for such a currency).
Exits non-zero when a currency's journal does not balance or does not tie
out to the waterfall.
"""

import re

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing.models import Account
from revenue.export import render_month
from revenue.selectors import revenue_report

MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class Command(BaseCommand):
    help = "Print a month's revenue journal entries and waterfall, per currency."

    def add_arguments(self, parser):
        parser.add_argument("--month", required=True, help="YYYY-MM")
        parser.add_argument("--currency", help="only this currency (e.g. usd)")
        parser.add_argument("--account", type=int, help="only this account (id)")

    def handle(self, *args, month: str, currency: str | None, account: int | None, **options):
        if not MONTH.match(month or ""):
            raise CommandError(f"--month must be YYYY-MM, not {month!r}")
        acct = None
        if account is not None:
            acct = Account.objects.filter(pk=account).first()
            if acct is None:
                raise CommandError(f"no account with id {account}")
        now = timezone.now()
        report = revenue_report(account=acct, currency=currency, now=now)
        scope = f"account {acct.pk} ({acct})" if acct else "all accounts"
        self.stdout.write(f"Revenue report {month}, {scope}, as of {now:%Y-%m-%d %H:%M} UTC\n")
        for warning in report.warnings:
            self.stdout.write(f"warning: {warning}")
        currencies = [currency.lower()] if currency else report.currencies
        if not currencies:
            self.stdout.write("No finalized invoices and no open-period usage.")
            return
        unbalanced = []
        for code in currencies:
            text, journal = render_month(report, currency=code, month=month)
            self.stdout.write("\n" + text)
            if not journal.balanced:
                unbalanced.append(code)
        if unbalanced:
            raise CommandError(f"journal does not balance for {', '.join(unbalanced)} in {month}")
