"""Per-pair failure isolation for the reporting pass (see :mod:`usage.services.reporting`).

A reporting pass works through many (customer, meter) pairs. Whatever one pair raises
while being claimed or sent (a database error, a value no column can hold, a bug), the
pass logs it with its traceback, records it on that pair's ``ReportingFailure`` row
(visible in admin) and goes on with the next pair. When a failing pair succeeds again its
consecutive count goes back to 0.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db.models import F

from usage.models import ReportingFailure

log = logging.getLogger(__name__)
Stage = ReportingFailure.Stage


def reporting_failure_record(
    *, account_id: int, meter_id: int, stage: str, error: BaseException, now: datetime
) -> None:
    """Log ``error`` (with its traceback) and count it against the pair."""
    text = f"{type(error).__name__}: {error}"[:2000]
    log.error(
        "usage reporting of account %s, meter %s failed while %s; other pairs go on: %s",
        account_id,
        meter_id,
        stage,
        text,
        exc_info=error,
    )
    try:
        updated = ReportingFailure.objects.filter(account_id=account_id, meter_id=meter_id).update(
            stage=stage,
            consecutive_failures=F("consecutive_failures") + 1,
            total_failures=F("total_failures") + 1,
            last_error=text,
            last_failed_at=now,
        )
        if not updated:
            ReportingFailure.objects.get_or_create(
                account_id=account_id,
                meter_id=meter_id,
                defaults={
                    "stage": stage,
                    "consecutive_failures": 1,
                    "total_failures": 1,
                    "last_error": text,
                    "last_failed_at": now,
                },
            )
    except Exception:  # recording must not become the failure that stops the pass
        log.exception("could not record the reporting failure of %s/%s", account_id, meter_id)


def failing_pairs() -> set[tuple[int, int]]:
    """The pairs whose last attempt failed (one query per pass)."""
    return set(
        ReportingFailure.objects.filter(consecutive_failures__gt=0).values_list(
            "account_id", "meter_id"
        )
    )


def reporting_failure_clear(
    *, account_id: int, meter_id: int, now: datetime, stage: str | None = None
) -> None:
    """The pair succeeded: its consecutive count goes back to 0 (the total stays). A
    successful claim clears only a claim failure (its sends may still be failing); a
    successful send clears either."""
    failures = ReportingFailure.objects.filter(
        account_id=account_id, meter_id=meter_id, consecutive_failures__gt=0
    )
    if stage is not None:
        failures = failures.filter(stage=stage)
    failures.update(consecutive_failures=0, recovered_at=now)
