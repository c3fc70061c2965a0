from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from billing.catalog.spec import CatalogError, load_catalog
from billing.services.catalog import catalog_apply


class Command(BaseCommand):
    help = "Apply a catalog TOML file (meters, plans, prices) to Stripe and mirror it."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        apply = sub.add_parser("apply", help="create or update everything the file declares")
        apply.add_argument("path", type=Path)
        check = sub.add_parser("check", help="validate the file without calling Stripe")
        check.add_argument("path", type=Path)

    def handle(self, *args, action: str, path: Path, **options):
        if not path.exists():
            raise CommandError(f"{path}: no such file")
        try:
            catalog = load_catalog(path)
        except CatalogError as exc:
            raise CommandError(str(exc)) from exc
        if action == "check":
            prices = sum(len(p.prices) for p in catalog.plans)
            currencies = dict.fromkeys(c for p in catalog.plans for c in p.currencies)
            self.stdout.write(
                f"{path}: {len(catalog.meters)} meters, {len(catalog.plans)} plans, "
                f"{prices} prices (in {', '.join(currencies)}), all valid"
            )
            return
        report = catalog_apply(catalog=catalog)
        for line in report.lines():
            self.stdout.write(line)
        self.stdout.write(
            self.style.SUCCESS(
                f"Applied {path}: {len(report.created)} created, {len(report.updated)} updated, "
                f"{len(report.archived)} archived, {len(report.unchanged)} unchanged"
            )
        )
