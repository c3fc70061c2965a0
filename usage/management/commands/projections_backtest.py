from collections import Counter
from decimal import Decimal

from django.core.management.base import BaseCommand
from django.utils import timezone

from usage.backtest import mean_absolute_percentage_error
from usage.selectors.backtest import CHECKPOINTS, BacktestCase, projections_backtest


def _percent(value: Decimal | None) -> str:
    return "-" if value is None else f"{value.quantize(Decimal('0.1'))}%"


class Command(BaseCommand):
    help = (
        "Replay past periods of the stored usage rollups through the projections and print "
        "the mean absolute percentage error (MAPE) at 25%, 50% and 75% of each period. "
        "Periods are monthly, anchored on each (account, meter)'s first day of usage."
    )

    def add_arguments(self, parser):
        parser.add_argument("--account", type=int, help="only this account id")
        parser.add_argument("--meter", help="only the meter with this event_name")
        parser.add_argument(
            "--periods", type=int, help="only the last N complete periods of each meter"
        )
        parser.add_argument(
            "--verbose-periods",
            action="store_true",
            help="also print every replayed projection",
        )

    def handle(self, *args, account, meter, periods, verbose_periods, **options):
        cases = projections_backtest(
            now=timezone.now(), account_id=account, event_name=meter, periods=periods
        )
        series = {(c.account_id, c.meter.pk) for c in cases}
        period_count = len({(c.account_id, c.meter.pk, c.period_start) for c in cases})
        self.stdout.write(
            f"Backtest: {period_count} complete periods of {len(series)} account meters "
            "(monthly, anchored on the first day of usage)"
        )
        if verbose_periods:
            for c in cases:
                self._write_case(c)
        self.stdout.write(f"{'checkpoint':<10}  {'periods':>7}  {'MAPE':>8}  {'in range':>8}")
        for fraction in CHECKPOINTS:
            at = [c for c in cases if c.fraction == fraction]
            scored = [c for c in at if c.actual != 0]
            mape = mean_absolute_percentage_error(
                (c.projection.projected, c.actual) for c in scored
            )
            in_range = (
                Decimal(sum(c.in_range for c in scored)) / len(scored) * 100 if scored else None
            )
            label = f"{fraction:.0%}"
            self.stdout.write(
                f"{label:<10}  {len(scored):>7}  {_percent(mape):>8}  {_percent(in_range):>8}"
            )
        skipped = len({(c.account_id, c.meter.pk, c.period_start) for c in cases if c.actual == 0})
        methods = Counter(c.projection.method for c in cases)
        mix = ", ".join(f"{name} {count}" for name, count in sorted(methods.items())) or "-"
        self.stdout.write(f"methods: {mix}")
        if skipped:
            self.stdout.write(f"skipped: {skipped} periods with an actual of 0")

    def _write_case(self, c: BacktestCase) -> None:
        p = c.projection
        self.stdout.write(
            f"  account={c.account_id} {c.meter.event_name} {c.period_start:%F}..{c.period_end:%F}"
            f" at {c.fraction:.0%}: projected {p.projected:,} [{p.low:,}..{p.high:,}]"
            f" actual {c.actual:,} ({p.method})"
        )
