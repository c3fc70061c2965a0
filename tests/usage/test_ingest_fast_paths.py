"""The ingest path's fast paths (issue 19) give what the slow ones gave: the payload
hash without json.dumps, orjson for the body (json.loads for what orjson reads
differently), and the ledger's array parameters built as text."""

import hashlib
import json
from datetime import UTC, datetime

import pytest

from usage.api_body import parse_events
from usage.event_validation import OversizedNumber, payload_hash
from usage.models import EventIdentifier, UsageEvent

STRINGS = ["api_calls", "cus_A1", 'a"b', "a\\b", "é", "\x7f", "a b ~", "\t", "\u2028", "", "{,}"]


def _hash_by_json(event_name, customer, value, timestamp):
    ts = None if timestamp is None else timestamp.isoformat()
    canonical = json.dumps([event_name, customer, value, ts], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def test_the_payload_hash_is_the_one_json_dumps_gives():
    moment = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)
    for name in STRINGS:
        for customer in STRINGS:
            for value in (0, 7, 10**14):
                for ts in (None, moment):
                    got = payload_hash(
                        event_name=name, customer=customer, value=value, timestamp=ts
                    )
                    assert got == _hash_by_json(name, customer, value, ts), (name, customer)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"event_name": "api_calls", "customer": "c", "value": 123456789012345678}',
        b'{"events": [{"value": 12345678901234567890}, {"value": -9223372036854775809}]}',
        b'{"value": 1234567890123456789012345}',  # OversizedNumber
        b'{"value": NaN, "timestamp": 1e400}',  # orjson refuses both
        b'{"identifier": "\\ud800"}',  # a lone surrogate: orjson refuses it
        b'{"identifier": "x1234567890123456789012", "value": 1.5}',
    ],
)
def test_the_body_parses_as_json_loads_reads_it(raw):
    def number(text):
        return int(text) if len(text.lstrip("-")) <= 20 else OversizedNumber(text)

    expected = json.loads(raw, parse_int=number)
    expected = expected.get("events", [expected])
    got = parse_events(raw, max_batch=1000)
    assert repr(got) == repr(expected)
    assert [type(v) for e in got for v in e.values()] == [
        type(v) for e in expected for v in e.values()
    ]


@pytest.mark.django_db
def test_identifiers_with_array_syntax_are_stored_as_sent_and_found_again(api, customer):
    identifiers = ['q"uote', "back\\slash", "{brace},comma", "sp ace", "'apos'", "NULL", "é✓"]
    events = [
        {"event_name": "api_calls", "customer": customer, "identifier": i, "value": n}
        for n, i in enumerate(identifiers, 1)
    ]
    first = api.post({"events": events})
    assert first.status_code == 202
    assert first.json()["accepted"] == len(identifiers)
    stored = dict(UsageEvent.objects.values_list("identifier", "value"))
    assert stored == {i: n for n, i in enumerate(identifiers, 1)}
    assert set(EventIdentifier.objects.values_list("identifier", flat=True)) == set(identifiers)
    again = api.post({"events": events})
    assert again.json()["accepted"] == 0
    assert again.json()["duplicates"] == len(identifiers)
    assert again.json()["identifiers"] == identifiers
