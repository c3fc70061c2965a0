"""Collect every Stripe request a full demo run makes, for the emulator's strictness test.

    .venv/bin/python scripts/capture_stripe_requests.py \
        tests/stripe_emulator/fixtures/demo_requests.jsonl

Starts the emulator with ``--log-requests`` on a free port, seeds the demo into a
throwaway SQLite database (``demo_seed``: catalog, seven accounts on test clocks, seven
weeks of usage reported, renewals, the dj-stripe mirror, alerts), then runs what the
worker, the web pages and staff do after that: the meter sync, a reporting pass and
reconciliation, invoice previews for every account, the catalog applied again, a portal
session, a plan change and a cancellation, a full ``stripe_sync_everything``, and every
Stripe event processed as the webhook endpoint would (dj-stripe re-retrieves). Every
``/v1``/``/v2`` request lands in the file as a JSON line (method, path, route, params,
status); the script prints how many there were and how many were 400s.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(out: Path) -> int:
    from stripe_emulator.testing import running_emulator

    work = Path(tempfile.mkdtemp(prefix="meterdesk-capture-"))
    log = work / "requests.jsonl"
    emulator_log = (work / "emulator.log").open("w")
    with running_emulator("--log-requests", str(log), log=emulator_log) as url:
        os.environ.update(
            DJANGO_SETTINGS_MODULE="config.settings.local",
            DATABASE_URL=f"sqlite:///{work / 'demo.sqlite3'}",
            STRIPE_API_HOST=url,
            CELERY_TASK_ALWAYS_EAGER="true",
        )
        os.environ.pop("REDIS_URL", None)
        _run_demo(work)
    emulator_log.close()
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    out.write_text("".join(json.dumps(line, sort_keys=True) + "\n" for line in lines))
    statuses = Counter(line["status"] for line in lines)
    routes = Counter(f"{line['method']} {line['route']}" for line in lines)
    print(f"{len(lines)} requests, {len(routes)} endpoints, statuses {dict(statuses)}")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if statuses.get(400, 0) == 0 else 1


def _run_demo(work: Path) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    kept = {}  # the seed writes var/demo-*.txt: keep the developer's own
    for name in ("demo-logins.txt", "demo-ingest-key.txt"):
        path = Path(settings.VAR_DIR) / name
        kept[path] = path.read_bytes() if path.exists() else None
    try:
        call_command("migrate", verbosity=0)
        from demo.seed import demo_seed

        demo_seed(log=lambda _: None)
        _after_the_seed(get_user_model())
    finally:
        for path, content in kept.items():
            if content is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(content)


def _after_the_seed(users) -> None:
    from billing.catalog.spec import load_catalog
    from billing.models import Account, Plan
    from billing.services.catalog import catalog_apply
    from billing.services.portal import portal_session_create
    from billing.services.preview import invoice_preview
    from billing.services.stripe_sync import stripe_sync_everything
    from billing.services.subscriptions import (
        subscription_cancel_at_period_end,
        subscription_change_plan,
    )
    from billing.tasks import sync_meters_from_stripe
    from demo.seed import CATALOG
    from usage.services.reconciliation import usage_reconcile
    from usage.services.reporting import usage_report_pass

    sync_meters_from_stripe()
    usage_report_pass(flush=True)
    usage_reconcile(include_open=True)
    accounts = list(Account.objects.order_by("id"))
    for account in accounts:
        invoice_preview(account=account)
    catalog_apply(catalog=load_catalog(CATALOG))
    owner = users.objects.get(username=accounts[0].memberships.first().user.username)
    portal_session_create(account=accounts[0], user=owner, return_url="https://example.com/")
    plans = list(Plan.objects.order_by("id"))
    subscription_change_plan(account=accounts[1], plan=plans[-1])
    subscription_cancel_at_period_end(account=accounts[2])
    stripe_sync_everything()
    _process_events_as_webhooks()


def _process_events_as_webhooks() -> None:
    """What the webhook endpoint does with each delivered event: dj-stripe processes it
    (re-retrieving the object with its expand fields) and billing applies it."""
    from djstripe.models import Event

    from billing.stripe_api import api_key, stripe_client

    client, failed = stripe_client(), Counter()
    params: dict = {"limit": 100}
    while True:  # raw JSON, as a webhook body is (StripeObject.to_dict() has Decimals)
        page = json.loads(client.raw_request("get", "/v1/events", **params).body)
        for data in page["data"]:
            try:
                Event.process(data=data, api_key=api_key())
            except Exception as exc:  # counted and shown: the capture goes on
                failed[f"{data['type']}: {type(exc).__name__}: {exc}"[:160]] += 1
        if not page["has_more"]:
            break
        params["starting_after"] = page["data"][-1]["id"]
    if failed:
        print(f"events dj-stripe could not process: {dict(failed)}")


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1])))
