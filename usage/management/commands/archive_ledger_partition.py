from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from usage.services.ledger_archive import (
    ArchiveRefused,
    manifest_path,
    parse_month,
    partition_archive,
)


class Command(BaseCommand):
    help = (
        "Export a closed month of the ledger (PostgreSQL partition usage_usageevent_pYYYY_MM) "
        "to a gzip CSV with a JSON manifest beside it; with --detach, detach the partition "
        "from the ledger (kept as a plain table, or dropped with --drop). Rollups and "
        "identifiers stay. Refused for the current and previous month, and for a month with "
        "unreported events or invoices not final."
    )

    def add_arguments(self, parser):
        parser.add_argument("--month", required=True, help="the month to archive, YYYY-MM")
        parser.add_argument("--to", required=True, help="the file to write, ending in .csv.gz")
        parser.add_argument(
            "--detach", action="store_true", help="detach the partition once exported"
        )
        parser.add_argument(
            "--drop", action="store_true", help="drop the detached table (needs --detach)"
        )
        parser.add_argument(
            "--lock-timeout",
            type=float,
            default=10.0,
            help="seconds to wait for the ledger's lock to detach (default 10)",
        )

    def handle(self, *args, month, to, detach, drop, lock_timeout, **options):
        try:
            manifest = partition_archive(
                month=parse_month(month),
                to=Path(to),
                detach=detach,
                drop=drop,
                lock_timeout_seconds=lock_timeout,
            )
        except ArchiveRefused as refused:
            raise CommandError(str(refused)) from refused
        action = "dropped" if manifest.dropped else "detached" if manifest.detached else "kept"
        self.stdout.write(
            f"{manifest.table}: {manifest.rows} rows (ids {manifest.min_id}..{manifest.max_id}) "
            f"-> {to} sha256 {manifest.sha256}; manifest {manifest_path(Path(to))}; "
            f"partition {action}"
        )
