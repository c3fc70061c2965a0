"""How a fault-matrix case ends: the ledger against Stripe's event summaries per
(customer, meter, period), in units of the meter, and the row written to the results file.

- ``sent``: events the client posted (each batch until it was answered 202);
- ``stored``: of those, events in the ledger; ``reported``: stored events whose report
  Stripe accepted (status ``sent``);
- ``lost``: units sent but not stored, plus, per (customer, meter, period), units in the
  ledger that Stripe's summaries lack (an event never reported counts here too);
- ``double``: units Stripe's summaries hold beyond the ledger, plus units stored beyond
  what was sent.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.db import connections
from django.db.models import Count, Sum

from billing.models import Meter
from tests.conftest import ROOT
from tests.usage.conftest import stripe_total
from usage.models import UsageEvent, UsageReport

FULL = os.environ.get("MD_RELIABILITY_FULL", "") not in ("", "0")
RESULTS_DIR = ROOT / "var" / "reliability"


def results_path() -> Path:
    """The full matrix (``make reliability``) and the short one (``make test``) keep
    separate files, so a ``make test`` never overwrites the numbers in the README."""
    return RESULTS_DIR / ("results.json" if FULL else "results-short.json")


@dataclass
class CaseResult:
    case: str
    title: str
    faults: str = ""
    sent: int = 0
    stored: int = 0
    reported: int = 0
    lost: int = 0
    double: int = 0
    periods: int = 0
    reports: int = 0
    resent_reports: int = 0  # reports that needed more than one attempt
    api_5xx: int = 0  # ingestion answers retried by the client
    seconds: float = 0.0
    mismatches: list = field(default_factory=list)


def summary_windows(rows: list[tuple]) -> list[tuple]:
    """``(start, end, units)`` periods of one (customer, meter) as windows Stripe's event
    summaries accept (minute-aligned bounds): periods meeting at a boundary inside a
    minute (a subscription started at 10:04:37) are compared together, and the outer
    bounds are widened to the minute (no period of this pair lies there)."""
    windows: list[list] = []
    for start, end, units in sorted(rows):
        if windows and windows[-1][1] == start and start.second:
            windows[-1][1], windows[-1][2] = end, windows[-1][2] + units
        else:
            windows.append([start, end, units])
    return [(_floor_minute(a), _ceil_minute(b), units) for a, b, units in windows]


def _floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _ceil_minute(moment: datetime) -> datetime:
    floor = _floor_minute(moment)
    return floor if floor == moment else floor + timedelta(minutes=1)


def _units(aggregation: str, count: int, total: int) -> int:
    return count if aggregation == Meter.Aggregation.COUNT else total


def compare(
    result: CaseResult, *, events: list[dict], stripe_client, using: str = "default"
) -> CaseResult:
    """Fill ``result`` from the ledger (database ``using``) and Stripe (the emulator)."""
    aggregation = dict(Meter.objects.using(using).values_list("event_name", "aggregation"))
    sent_units: dict[tuple, int] = defaultdict(int)
    for e in events:
        key = (e["customer"], e["event_name"])
        sent_units[key] += _units(aggregation[e["event_name"]], 1, e.get("value", 1))

    ledger = UsageEvent.objects.using(using)
    sent_ids = {e["identifier"] for e in events}
    stored_ids = set(ledger.values_list("identifier", flat=True))
    result.sent, result.stored = len(sent_ids), len(sent_ids & stored_ids)
    result.reported = ledger.filter(report__status=UsageReport.Status.SENT).count()

    # Sent against stored, per (customer, meter): the ingestion side.
    stored_units: dict[tuple, int] = defaultdict(int)
    by_pair = ledger.values_list("account__djstripe_customers__id", "meter__event_name")
    for cus, name, n, total in by_pair.annotate(n=Count("id"), total=Sum("value")):
        stored_units[(cus, name)] += _units(aggregation[name], n, total or 0)
    unreported = by_pair.filter(report__isnull=True)
    for cus, name, n, total in unreported.annotate(n=Count("id"), total=Sum("value")):
        result.lost += _units(aggregation[name], n, total or 0)  # never reported
        result.mismatches.append(("unreported", cus, name, n))
    for key in sent_units.keys() | stored_units.keys():
        diff = stored_units.get(key, 0) - sent_units.get(key, 0)
        result.lost += max(0, -diff)
        result.double += max(0, diff)
        if diff:
            result.mismatches.append(("ingest", *key, diff))

    # The ledger against Stripe, per (customer, meter, period).
    periods = (
        ledger.filter(report__isnull=False)
        .values_list(
            "report__stripe_customer_id",
            "meter__event_name",
            "report__period_start",
            "report__period_end",
        )
        .annotate(n=Count("id"), total=Sum("value"))
    )
    by_pair: dict[tuple, list] = defaultdict(list)
    for cus, name, start, end, n, total in periods:
        by_pair[(cus, name)].append((start, end, _units(aggregation[name], n, total or 0)))
        result.periods += 1
    for (cus, name), rows in by_pair.items():
        for start, end, want in summary_windows(rows):
            got = stripe_total(stripe_client, event_name=name, customer=cus, start=start, end=end)
            result.lost += max(0, want - got)
            result.double += max(0, got - want)
            if got != want:
                result.mismatches.append(("stripe", cus, name, start.isoformat(), want, got))

    reports = UsageReport.objects.using(using)
    result.reports = reports.count()
    result.resent_reports = reports.filter(attempts__gt=1).count()
    return result


def all_reported(using: str = "default") -> bool:
    """Every event is in a report and no report is waiting to be sent."""
    try:
        return (
            not UsageEvent.objects.using(using).filter(report__isnull=True).exists()
            and not UsageReport.objects.using(using)
            .filter(status__in=[UsageReport.Status.PENDING, UsageReport.Status.SENDING])
            .exists()
        )
    except Exception:  # the database is down (the crash case): not yet
        connections[using].close()
        return False


def record(result: CaseResult, *, started: float) -> None:
    """Print the row and merge it into the results file (one row per case)."""
    result.seconds = round(time.monotonic() - started, 1)
    path = results_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text()) if path.exists() else {}
    data.setdefault("cases", {})[result.case] = {
        **asdict(result),
        "mismatches": [list(map(str, m)) for m in result.mismatches][:20],
        "database": connections["default"].vendor,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    data["mode"] = "full" if FULL else "short"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print(
        f"\nreliability {result.case}: sent={result.sent} stored={result.stored} "
        f"reported={result.reported} lost={result.lost} double={result.double} "
        f"periods={result.periods} reports={result.reports} resent={result.resent_reports} "
        f"api_5xx={result.api_5xx} ({result.seconds} s; {result.faults})"
    )
