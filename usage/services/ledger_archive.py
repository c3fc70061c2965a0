"""Retention: export a closed month of the ledger to a file, then detach (and drop) it.

PostgreSQL only (SQLite keeps one unpartitioned table). ``manage.py
archive_ledger_partition`` is the command; this module does the work:

- refused for the current and the previous month (and later ones), for a month with an
  event not yet reported to Stripe (``report_id`` null, or its report not sent: a voided
  event, which is never reported, does not count), and for a month whose usage is
  billed on an invoice that is not final (a draft, or none yet, for a period a
  subscription covers; periods no subscription covers are never invoiced);
- in one transaction: the partition locked ``SHARE`` (nothing may write it; reads go
  on), checked, exported with ``COPY (SELECT * FROM <partition> ORDER BY id) TO STDOUT
  (FORMAT csv, HEADER)`` into a gzip file with a JSON manifest beside it (rows, sha256 of
  the file and of the CSV, min/max id, columns), then with ``detach``:
  ``ALTER TABLE usage_usageevent DETACH PARTITION ..`` (ACCESS EXCLUSIVE on the ledger
  until commit, waited for at most ``lock_timeout``; ``DETACH .. CONCURRENTLY`` is not
  allowed with a default partition nor in a transaction,
  https://www.postgresql.org/docs/15/sql-altertable.html) and with ``drop`` the table
  dropped, else kept as a plain table under the same name.

What stays: the hourly rollups (``usage_usagerollup``, a separate table: dashboards,
projections and revenue read them), the reports, and the identifiers in
``usage_eventidentifier``, so an archived identifier sent again is still a duplicate.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.db import connection, transaction

from usage.services.ledger_partitions import (
    TABLE,
    attached_partitions,
    is_partitioned,
    ledger_columns,
    month_start,
    next_month,
    partition_name,
    previous_month,
)

DONE_REPORT_STATUSES = ("sent", "too_late", "canceled")


class ArchiveRefused(Exception):
    """Why a month cannot be archived; ``option`` names the command option at fault."""

    def __init__(self, option: str, message: str):
        super().__init__(message)
        self.option = option


@dataclass(frozen=True)
class ArchiveManifest:
    table: str
    month: str
    range_from: str
    range_to: str
    rows: int
    min_id: int | None
    max_id: int | None
    sha256: str  # of the .csv.gz file as written
    csv_sha256: str  # of the CSV inside it
    columns: list[str]
    format: str
    exported_at: str
    detached: bool
    dropped: bool


def manifest_path(to: Path) -> Path:
    """``ledger-2026-01.csv.gz`` -> ``ledger-2026-01.manifest.json``."""
    return to.with_name(to.name.removesuffix(".csv.gz") + ".manifest.json")


def parse_month(text: str) -> datetime:
    try:
        parsed = datetime.strptime(text, "%Y-%m")
    except ValueError:
        raise ArchiveRefused(
            "--month", f"--month {text!r}: expected YYYY-MM, e.g. 2026-01"
        ) from None
    return datetime(parsed.year, parsed.month, 1, tzinfo=UTC)


def _checked_target(to: Path) -> None:
    if not to.name.endswith(".csv.gz"):
        raise ArchiveRefused("--to", f"--to {to}: the file name must end in .csv.gz")
    if not to.parent.is_dir():
        raise ArchiveRefused("--to", f"--to {to}: folder {to.parent} does not exist")
    for path in (to, manifest_path(to)):
        if path.exists():
            raise ArchiveRefused("--to", f"--to {to}: {path} already exists (not overwritten)")


def _checked_month(month: datetime, now: datetime) -> str:
    label = f"{month:%Y-%m}"
    if month >= previous_month(now):
        raise ArchiveRefused(
            "--month",
            f"--month {label}: only months before the previous one ({previous_month(now):%Y-%m}) "
            "can be archived (late events and corrections still reach the last two)",
        )
    name = partition_name(month)
    if name not in attached_partitions():
        raise ArchiveRefused("--month", f"--month {label}: no partition {name} attached")
    return name


def _unreported(name: str) -> int:
    marks = ", ".join(["%s"] * len(DONE_REPORT_STATUSES))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM {name} e LEFT JOIN usage_usagereport r ON r.id = e.report_id "
            f"WHERE (e.report_id IS NULL OR r.status NOT IN ({marks})) "
            "AND NOT EXISTS (SELECT 1 FROM usage_voidedevent v WHERE v.event_id = e.id)",
            list(DONE_REPORT_STATUSES),
        )
        return cursor.fetchone()[0]


def _report_periods(name: str) -> list[tuple[int, datetime, datetime]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT r.account_id, r.period_start, r.period_end FROM usage_usagereport r "
            f"WHERE r.id IN (SELECT DISTINCT report_id FROM {name} WHERE report_id IS NOT NULL) "
            "ORDER BY 1, 2",
        )
        return cursor.fetchall()


def unfinal_invoices(name: str) -> list[str]:
    """Reported periods of the partition's events whose invoice is not final: each as
    ``account N yyyy-mm-dd..yyyy-mm-dd: why``."""
    from billing.mirror.invoices import FINALIZED_STATUSES, account_invoices
    from billing.mirror.periods import account_subscription_spans
    from billing.models import Account

    problems = []
    by_account: dict[int, tuple] = {}
    for account_id, start, end in _report_periods(name):
        if account_id not in by_account:
            account = Account.objects.get(pk=account_id)
            by_account[account_id] = (
                account_subscription_spans(account=account),
                account_invoices(account=account, limit=10_000),
            )
        spans, invoices = by_account[account_id]
        if not any(s <= start and (e is None or start < e) for s, e in spans):
            continue  # no subscription: usage outside one is never invoiced
        billing = [
            invoice
            for invoice in invoices
            if invoice.status != "void"
            and (invoice.created is None or invoice.created >= end)
            and any((line.period_start, line.period_end) == (start, end) for line in invoice.lines)
        ]
        where = f"account {account_id} {start:%Y-%m-%d}..{end:%Y-%m-%d}"
        if any(invoice.status in FINALIZED_STATUSES for invoice in billing):
            continue
        if billing:
            problems.append(f"{where}: invoice {billing[0].id} is {billing[0].status}")
        else:
            problems.append(f"{where}: no invoice yet")
    return problems


def _export(name: str, columns: list[str], target: Path) -> tuple[str, str]:
    """COPY the partition into ``target`` (gzip CSV with a header): (file, CSV) sha256."""
    csv_hash = hashlib.sha256()
    quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
    sql = f"COPY (SELECT {quoted} FROM {name} ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)"
    # COPY hands over one row at a time: gathered into 1 MiB blocks before hashing and
    # compressing. Level 6 (gzip's own default): level 9 costs far more CPU for ~2% less.
    # mtime=0: the same rows give the same file, byte for byte.
    block = bytearray()
    with (
        open(target, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=6) as out,
        connection.cursor() as cursor,
        cursor.copy(sql) as copy,
    ):
        for chunk in copy:
            block += chunk
            if len(block) >= 1 << 20:
                csv_hash.update(block)
                out.write(block)
                block.clear()
        csv_hash.update(block)
        out.write(block)
    file_hash = hashlib.sha256()
    with open(target, "rb") as written:
        for block in iter(lambda: written.read(1 << 20), b""):
            file_hash.update(block)
    return file_hash.hexdigest(), csv_hash.hexdigest()


def partition_archive(
    *,
    month: datetime,
    to: Path,
    detach: bool = False,
    drop: bool = False,
    lock_timeout_seconds: float = 10.0,
    now: datetime | None = None,
) -> ArchiveManifest:
    """Export ``month``'s partition to ``to`` (+ manifest), then detach / drop it (see
    the module doc). Raises :class:`ArchiveRefused` and changes nothing when refused."""
    now = now or datetime.now(UTC)
    month = month_start(month)
    if drop and not detach:
        raise ArchiveRefused("--drop", "--drop needs --detach (only a detached table is dropped)")
    if not is_partitioned():
        raise ArchiveRefused(
            "--month", "the ledger is not partitioned (PostgreSQL only): nothing to archive"
        )
    to = Path(to)
    _checked_target(to)
    name = _checked_month(month, now)
    label = f"{month:%Y-%m}"
    partials = [to.with_name(to.name + ".partial"), manifest_path(to).with_name(
        manifest_path(to).name + ".partial"
    )]  # fmt: skip
    done: list[Path] = []
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {name} IN SHARE MODE")
                unreported = _unreported(name)
                if unreported:
                    raise ArchiveRefused(
                        "--month",
                        f"--month {label}: {unreported} event(s) not reported to Stripe yet",
                    )
                problems = unfinal_invoices(name)
                if problems:
                    raise ArchiveRefused(
                        "--month", f"--month {label}: invoices not final: " + "; ".join(problems)
                    )
                cursor.execute(f"SELECT count(*), min(id), max(id) FROM {name}")
                rows, min_id, max_id = cursor.fetchone()
            columns = ledger_columns()
            file_sha, csv_sha = _export(name, columns, partials[0])
            manifest = ArchiveManifest(
                table=name,
                month=label,
                range_from=month.isoformat(),
                range_to=next_month(month).isoformat(),
                rows=rows,
                min_id=min_id,
                max_id=max_id,
                sha256=file_sha,
                csv_sha256=csv_sha,
                columns=columns,
                format="csv (PostgreSQL COPY), header row, gzip",
                exported_at=now.isoformat(),
                detached=detach,
                dropped=drop,
            )
            partials[1].write_text(json.dumps(asdict(manifest), indent=2) + "\n")
            if detach:
                with connection.cursor() as cursor:
                    # Deferred foreign-key checks of an enclosing transaction's writes
                    # must run first: PostgreSQL refuses DETACH / DROP with them pending.
                    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                    timeout_ms = int(lock_timeout_seconds * 1000)
                    cursor.execute(f"SET LOCAL lock_timeout = '{timeout_ms}ms'")
                    cursor.execute(f"ALTER TABLE {TABLE} DETACH PARTITION {name}")
                    if drop:
                        cursor.execute(f"DROP TABLE {name}")
            for partial, final in zip(partials, (to, manifest_path(to)), strict=True):
                os.replace(partial, final)
                done.append(final)
    except BaseException:
        for path in (*partials, *done):
            path.unlink(missing_ok=True)
        raise
    return manifest
