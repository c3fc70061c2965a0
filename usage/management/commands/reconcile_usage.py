from django.core.management.base import BaseCommand

from usage.services.reconciliation import usage_reconcile


class Command(BaseCommand):
    help = "Compare the ledger with Stripe's meter event summaries per customer, meter, period."

    def add_arguments(self, parser):
        parser.add_argument(
            "--include-open", action="store_true", help="also check periods not yet ended"
        )

    def handle(self, *args, include_open, **options):
        results = usage_reconcile(include_open=include_open)
        for r in results:
            self.stdout.write(
                f"{r.status:8} {r.meter.event_name} account={r.account_id} "
                f"{r.period_start:%F}..{r.period_end:%F} ledger={r.ledger_value} "
                f"stripe={r.stripe_value} difference={r.difference}"
                + (f"  -> {r.suggested_action}" if r.status != "match" else "")
            )
        mismatches = sum(r.status == "mismatch" for r in results)
        self.stdout.write(f"{len(results)} checked, {mismatches} mismatched")
