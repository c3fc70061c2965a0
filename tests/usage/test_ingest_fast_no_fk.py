"""The ledger without database foreign keys on account and meter (migration 0019, issue
19): PostgreSQL no longer checks them per inserted event, and Django still refuses to
delete an account or a meter that has events (``on_delete=PROTECT``)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import ProtectedError

from billing.models import Account, Meter
from usage.models import UsageEvent
from usage.services.ingest import usage_events_ingest

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


def _store_one(customer: str) -> UsageEvent:
    answer = usage_events_ingest(
        events=[{"event_name": "api_calls", "customer": customer, "identifier": "fk-1"}], now=NOW
    )
    assert answer.accepted == 1
    return UsageEvent.objects.get(identifier="fk-1")


def test_an_account_with_events_cannot_be_deleted(customer):
    event = _store_one(customer)
    with pytest.raises(ProtectedError):
        Account.objects.get(pk=event.account_id).delete()
    assert Account.objects.filter(pk=event.account_id).exists()


def test_a_meter_with_events_cannot_be_deleted(customer):
    event = _store_one(customer)
    with pytest.raises(ProtectedError):
        Meter.objects.get(pk=event.meter_id).delete()
    assert Meter.objects.filter(pk=event.meter_id).exists()


def _ledger_foreign_keys() -> set[tuple[str, str]]:
    """(table, referenced table) of every foreign key on the ledger and its partitions."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint "
                "WHERE contype = 'f' AND conrelid::regclass::text LIKE 'usage_usageevent%%'"
            )
            return set(cursor.fetchall())
        cursor.execute("SELECT \"table\" FROM pragma_foreign_key_list('usage_usageevent')")
        return {("usage_usageevent", table) for (table,) in cursor.fetchall()}


def test_only_the_report_foreign_key_is_left_on_the_ledger(customer):
    _store_one(customer)
    keys = _ledger_foreign_keys()
    referenced = {target for _, target in keys}
    assert referenced == {"usage_usagereport"}
    assert ("usage_usageevent", "usage_usagereport") in keys
    if connection.vendor == "postgresql":  # the partitions follow their parent
        assert len(keys) > 1
