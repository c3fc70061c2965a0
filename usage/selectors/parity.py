"""Selectors: parity of a closed period's usage for one meter, from the ledger to the
invoice line, with every difference named.

Four numbers that should agree: the ledger's value for the period (read through the
rollups), what Meterdesk reported (its ``sent`` ``UsageReport`` rows of the period),
Stripe's event summaries (the latest ``ReconciliationResult``: a page never calls
Stripe) and the Stripe invoice line's quantity. Where they do not, each cause is named
with its units and what those units cost (the pricing engine):

- ``late``: reported after the invoice was finalized: in Stripe's summaries, not on the
  invoice;
- ``too_late``: never sent, Stripe's 35 days had run out;
- ``failed``: reports Stripe refused, not (yet) retried;
- ``pending``: reports still waiting to be sent;
- ``correction``: corrections made after finalization, from :data:`CORRECTION_SOURCES`
  (the corrections feature registers its reader there);
- ``unexplained``: whatever is left.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from billing.mirror.invoices import finalized_invoices
from billing.mirror.prices import mirrored_prices_data
from billing.models import Meter
from billing.pricing import PriceSpec, line_amount, price_spec_from_stripe
from usage.models import ReconciliationResult, UsageReport
from usage.selectors.drilldown import range_total

Status = UsageReport.Status
LABELS = {
    "late": "Usage reported after the invoice was finalized "
    "(in Stripe's summaries, not on the invoice)",
    "too_late": "Usage reported too late for Stripe (older than Stripe's 35 days)",
    "failed": "Reports Stripe refused, not yet retried",
    "pending": "Reports not sent yet",
    "correction": "Corrections made after the invoice was finalized",
    "unexplained": "Not explained by late, failed or corrected reports",
}


@dataclass(frozen=True)
class Difference:
    cause: str  # a key of LABELS
    units: int  # ledger side minus invoice side
    amount: int | None  # minor units those units cost (None: no price)

    @property
    def label(self) -> str:
        return LABELS[self.cause]


@dataclass(frozen=True)
class MeterParity:
    meter: Meter
    period_start: datetime
    period_end: datetime
    ledger: int
    reported: int
    stripe: int | None  # Stripe's summaries at the last reconciliation, None if never
    stripe_checked_at: datetime | None
    invoiced: int
    differences: tuple[Difference, ...]

    @property
    def matches(self) -> bool:
        values = {self.ledger, self.reported, self.invoiced}
        if self.stripe is not None:
            values.add(self.stripe)
        return len(values) == 1


# Readers of corrections made after an invoice was finalized: each is called with
# ``account_id, meter, start, end, finalized_at`` and yields ``(units, amount or None)``,
# units counted like the ledger's (negative: the correction removed usage).
CORRECTION_SOURCES: list[Callable[..., Iterable[tuple[int, int | None]]]] = []


def _value(meter: Meter, reports: list[UsageReport]) -> int:
    if meter.aggregation == Meter.Aggregation.LAST:
        return max(reports, key=lambda r: (r.timestamp, r.pk)).value if reports else 0
    return sum(r.value for r in reports)


def _differences(
    *, account_id, meter, start, end, ledger, invoiced, finalized_at, sent, by_status, cost
) -> tuple[Difference, ...]:
    """Each named cause of ``ledger - invoiced`` with its units and cost."""
    causes: list[tuple[str, int, int | None]] = []
    late = [r for r in sent if finalized_at and r.sent_at and r.sent_at > finalized_at]
    is_last = meter.aggregation == Meter.Aggregation.LAST
    if not is_last:
        causes.append(("late", _value(meter, late), None))
        for cause, status in (("too_late", Status.TOO_LATE), ("failed", Status.FAILED)):
            causes.append((cause, _value(meter, by_status.get(status, [])), None))
        pending = by_status.get(Status.PENDING, []) + by_status.get(Status.SENDING, [])
        causes.append(("pending", _value(meter, pending), None))
    for source in CORRECTION_SOURCES:
        for units, amount in source(
            account_id=account_id, meter=meter, start=start, end=end, finalized_at=finalized_at
        ):
            causes.append(("correction", units, amount))
    explained = sum(units for _, units, _ in causes)
    causes.append(("unexplained", ledger - invoiced - explained, None))
    return tuple(
        Difference(cause, units, amount if amount is not None else cost(units))
        for cause, units, amount in causes
        if units
    )


def meter_parity(
    *,
    account_id: int,
    meter: Meter,
    start: datetime,
    end: datetime,
    invoiced: int,
    finalized_at: datetime | None,
    spec: PriceSpec | None,
) -> MeterParity:
    """Parity of ``meter`` over the closed period ``[start, end)`` against the invoice
    line's quantity ``invoiced`` (finalized at ``finalized_at``), priced by ``spec``."""
    ledger = range_total(account_id=account_id, meter=meter, start=start, end=end)
    reports = list(
        UsageReport.objects.filter(account_id=account_id, meter=meter, period_start=start)
    )
    by_status: dict[str, list[UsageReport]] = {}
    for report in reports:
        by_status.setdefault(report.status, []).append(report)
    sent = by_status.get(Status.SENT, [])
    reported = _value(meter, sent)
    check = (
        ReconciliationResult.objects.filter(account_id=account_id, meter=meter, period_start=start)
        .order_by("-checked_at")
        .first()
    )

    def cost(units: int) -> int | None:
        if spec is None:
            return None
        return line_amount(price=spec, quantity=invoiced + units) - line_amount(
            price=spec, quantity=invoiced
        )

    differences = (
        ()
        if ledger == invoiced
        # The bill matches the ledger: nothing to explain. (A report's sent_at is wall
        # time and a test clock's invoice time is not, so "late" would misfire there.)
        else _differences(
            account_id=account_id, meter=meter, start=start, end=end, ledger=ledger,
            invoiced=invoiced, finalized_at=finalized_at, sent=sent, by_status=by_status,
            cost=cost,
        )
    )  # fmt: skip
    return MeterParity(
        meter=meter,
        period_start=start,
        period_end=end,
        ledger=ledger,
        reported=reported,
        stripe=check.stripe_value if check else None,
        stripe_checked_at=check.checked_at if check else None,
        invoiced=invoiced,
        differences=differences,
    )


def period_parity(*, account, meter: Meter, period_start: datetime) -> MeterParity | None:
    """Parity of the account's finalized invoice line that bills ``meter`` for the period
    starting at ``period_start`` (as admin shows it next to a reconciliation), else None."""
    for invoice in finalized_invoices(account=account):
        for line in invoice.usage_lines:
            if line.meter != meter or line.period_start != period_start or not line.period_end:
                continue
            if invoice.billed_at is None or invoice.billed_at < line.period_end:
                continue  # billed in advance (a first invoice): not the usage line
            data = mirrored_prices_data(price_ids={line.price_id}).get(line.price_id)
            return meter_parity(
                account_id=account.pk, meter=meter, start=line.period_start,
                end=line.period_end, invoiced=line.quantity, finalized_at=invoice.billed_at,
                spec=price_spec_from_stripe(data) if data else None,
            )  # fmt: skip
    return None


def parity_text(parity: MeterParity | None) -> str:
    """One line for admin: the four numbers and each named difference."""
    if parity is None:
        return "No finalized invoice line for this period yet."
    stripe = "not checked" if parity.stripe is None else f"{parity.stripe:,}"
    head = (f"ledger {parity.ledger:,} · reported {parity.reported:,} · Stripe {stripe}"
            f" · invoice {parity.invoiced:,}")  # fmt: skip
    if parity.matches:
        return f"{head}: all agree"
    causes = "; ".join(
        f"{d.label}: {d.units:,}" + ("" if d.amount is None else f" ({d.amount:+,} minor units)")
        for d in parity.differences
    )
    return f"{head}. {causes}"
