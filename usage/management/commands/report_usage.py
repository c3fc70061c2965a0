from django.core.management.base import BaseCommand

from usage.models import UsageReport
from usage.services.reporting import usage_report_pass


class Command(BaseCommand):
    help = "Run one pass of usage reporting to Stripe, now, and print what it did."

    def add_arguments(self, parser):
        parser.add_argument(
            "--flush",
            action="store_true",
            help="claim every unreported event now, ignoring the batching thresholds",
        )

    def handle(self, *args, flush: bool = False, **options):
        result = usage_report_pass(flush=flush)
        self.stdout.write(result.summary())
        for report in UsageReport.objects.filter(pk__in=result.too_late).select_related("meter"):
            self.stdout.write(
                f"too late: report {report.pk} {report.value} {report.meter.unit_label} of "
                f"{report.event_name} for {report.stripe_customer_id} at {report.timestamp:%F %T}"
            )
