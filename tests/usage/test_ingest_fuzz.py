"""Issue 12, item 3 and "a property-based fuzz test of the ingestion API": batches that mix
valid events with JSON junk, posted to the real view through Django's test client with
a real ingest key.

Properties, for every batch: never a 5xx; every valid event is stored (its identifier,
or the one generated for it, is in the ledger with its value); every invalid one is
rejected with its index and the code of the field that is wrong. Junk covers strings
with NUL and lone surrogates, integers too long for ``int()``, floats, NaN, nested
lists, wrong types, timestamps outside the years 1 to 9999 in UTC or Stripe's window.
Whole bodies that are not a batch (too deep, not an object) are one 400, nothing
stored. Derandomized, so every run with the same number of examples tries the same ones:
300 in ``make test``, more with ``MD_FUZZ_EXAMPLES`` (``MD_FUZZ_EXAMPLES=2000 make test
TEST_WORKERS=0 PYTEST_ARGS=tests/usage/test_ingest_fuzz.py`` tries 2,000, as this test
did in every run before; see EXAMPLES).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from usage.models import UsageEvent

pytestmark = pytest.mark.django_db

METERS = ("api_calls", "data_transfer_gb", "seats")
NOW = datetime.now(UTC).replace(microsecond=0)
# Well inside the window (35 days less the reporting margin, 5 minutes ahead).
VALID_FROM, VALID_TO = NOW - timedelta(days=30), NOW


class RawNumber(str):
    """A JSON number written as is (``json.dumps`` cannot write one of 5,000 digits)."""


def to_json(value) -> str:
    """JSON text of ``value``, with RawNumber written raw and NaN/Infinity as Python's
    json writes and reads them."""
    if isinstance(value, RawNumber):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    return json.dumps(value)


# -- junk ------------------------------------------------------------------------------------
nasty_char = st.sampled_from(["\x00", "\ud800", "\udfff", "\ud83d", "\udc00"])
nasty_text = st.builds(
    lambda a, c, b: a + c + b, st.text(max_size=6), nasty_char, st.text(max_size=6)
)
huge_int = st.integers(4_301, 6_000).map(lambda n: RawNumber("9" * n))
huge_negative = st.integers(4_301, 6_000).map(lambda n: RawNumber("-" + "9" * n))
scalar_junk = st.one_of(
    st.none(), st.booleans(), st.integers(), huge_int, huge_negative,
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), nasty_text,
)  # fmt: skip
any_junk = st.recursive(
    scalar_junk,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
not_a_string = st.one_of(
    st.booleans(), st.integers(), huge_int, st.floats(), st.lists(scalar_junk, max_size=2),
    st.dictionaries(st.text(max_size=3), scalar_junk, max_size=2),
)  # fmt: skip


_iso_outside = st.one_of(
    st.sampled_from(
        [
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "0001-01-01T00:30:00+23:59",
            "9999-12-31T23:00:00-23:59",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
        ]
    ),
    st.datetimes(max_value=datetime(2000, 1, 1), timezones=st.just(UTC)).map(
        lambda d: d.isoformat()
    ),
    st.datetimes(min_value=datetime(2100, 1, 1), timezones=st.just(UTC)).map(
        lambda d: d.isoformat()
    ),
)
_unix_outside = st.one_of(
    st.integers(max_value=int((NOW - timedelta(days=36)).timestamp())),
    st.integers(min_value=int((NOW + timedelta(hours=1)).timestamp())),
    huge_int,
    huge_negative,
)
# field -> (junk for it, codes it may be rejected with)
CORRUPTIONS = {
    "event_name": (
        st.one_of(nasty_text, not_a_string, st.just(""), st.text(max_size=8).map("nope_".__add__)),
        {"missing_field", "invalid_field", "unknown_meter"},
    ),
    "customer": (
        st.one_of(
            nasty_text, not_a_string, st.just(""), st.text(max_size=8).map("cus_no_".__add__)
        ),
        {"missing_field", "invalid_field", "unknown_customer"},
    ),
    "identifier": (
        st.one_of(
            nasty_text,
            st.booleans(),
            st.integers(),
            st.lists(st.integers(), max_size=2),
            st.sampled_from(["", " ", "\t\n"]),
            st.integers(101, 300).map(lambda n: "i" * n),
        ),
        {"invalid_identifier", "identifier_too_long"},
    ),
    "value": (
        st.one_of(
            st.integers(max_value=-1),
            st.integers(min_value=10**15 + 1),
            huge_int,
            huge_negative,
            st.floats(),
            st.booleans(),
            st.lists(scalar_junk, max_size=2),
            st.integers(4_301, 6_000).map(lambda n: "1" * n),  # int() of this raises
            st.integers(17, 40).map(lambda n: "9" * n),  # over 10**15
            st.text(max_size=6).filter(lambda t: not (t.isascii() and t.isdigit())),
            nasty_text,
        ),
        {"invalid_value"},
    ),
    "timestamp": (
        st.one_of(
            _iso_outside,
            _unix_outside,
            st.floats(),
            st.booleans(),
            nasty_text,
            st.lists(scalar_junk, max_size=2),
            st.text(max_size=10).map("x".__add__),
            st.datetimes(timezones=st.none()).map(lambda d: d.isoformat()),  # no offset
        ),
        {"invalid_timestamp", "timestamp_out_of_range"},
    ),
}


# -- valid events ----------------------------------------------------------------------------
@st.composite
def valid_event(draw, customers) -> tuple[dict, int]:
    """(event without identifier, the value stored)."""
    event = {
        "event_name": draw(st.sampled_from(METERS)),
        "customer": draw(st.sampled_from(customers)),
    }
    stored = 1
    value = draw(st.one_of(st.none(), st.integers(0, 10**9), st.integers(0, 10**9).map(str)))
    if value is not None or draw(st.booleans()):
        event["value"] = value
        stored = 1 if value is None else int(value)
    moment = draw(st.datetimes(min_value=VALID_FROM.replace(tzinfo=None),
                               max_value=VALID_TO.replace(tzinfo=None)))  # fmt: skip
    moment = moment.replace(tzinfo=UTC)
    form = draw(st.sampled_from(["absent", "null", "unix", "iso", "offset"]))
    if form == "null":
        event["timestamp"] = None
    elif form == "unix":
        event["timestamp"] = int(moment.timestamp())
    elif form == "iso":
        event["timestamp"] = moment.isoformat().replace("+00:00", "Z")
    elif form == "offset":
        offset = timezone(timedelta(minutes=draw(st.integers(-23 * 60, 23 * 60))))
        event["timestamp"] = moment.astimezone(offset).isoformat()
    return event, stored


@st.composite
def batches(draw, customers):
    """(body, expectations): expectation per index is ("ok", identifier or None, value),
    ("dup", index of the original) or ("bad", codes)."""
    n = draw(st.integers(1, 8))
    events, expect = [], []
    for i in range(n):
        kind = draw(st.sampled_from(["ok", "ok", "ok", "bad", "bad", "not_object", "dup"]))
        originals = [j for j, e in enumerate(expect) if e[0] == "ok" and e[1]]
        if kind == "dup" and originals:
            j = draw(st.sampled_from(originals))
            events.append(dict(events[j]))
            expect.append(("dup", j))
            continue
        if kind == "not_object":
            events.append(draw(st.one_of(scalar_junk, st.lists(any_junk, max_size=3))))
            expect.append(("bad", {"invalid_event"}))
            continue
        event, stored = draw(valid_event(customers))
        identifier = None if draw(st.integers(0, 9)) == 0 else f"ID-{i}"
        if identifier:
            event["identifier"] = identifier
        if kind == "bad":
            field = draw(st.sampled_from(sorted(CORRUPTIONS)))
            junk, codes = CORRUPTIONS[field]
            event[field] = draw(junk)
            expect.append(("bad", codes))
        else:
            expect.append(("ok", identifier, stored))
        events.append(event)
    wrap = draw(st.sampled_from(["batch", "batch", "batch", "single", "deep", "not_object"]))
    if wrap == "single" and len(events) == 1 and isinstance(events[0], dict):
        return to_json(events[0]), expect
    if wrap == "deep":
        depth = draw(st.integers(33, 60_000))
        return "[" * depth + "]" * draw(st.integers(0, depth)), None
    if wrap == "not_object":
        return to_json(draw(st.one_of(scalar_junk, st.lists(any_junk, max_size=3)))), None
    return to_json({"events": events}), expect


_example = itertools.count()
# Each example is one request through the whole ingest path and its own check: more
# examples look further into the junk, they assert nothing else. 2,000 cost ~55 s of CPU.
EXAMPLES = int(os.environ.get("MD_FUZZ_EXAMPLES", "300"))


def test_the_ingestion_api_never_fails_and_answers_every_event(api, make_customers):
    customers = make_customers(3, prefix="Fuzz")
    began = time.monotonic()
    tried = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(case=batches(customers))
    def check(case):
        raw, expect = case
        tag = f"fz{next(_example)}-"
        raw = raw.replace('"ID-', f'"{tag}')  # identifiers unique per example
        response = api.post(None, raw=raw)
        tried.append(response.status_code)
        assert response.status_code < 500, response.content[:300]
        if expect is None:  # not a batch at all
            assert response.status_code == 400
            assert response.json()["error"]["code"] == "invalid_json"
            return
        assert response.status_code == 202, response.content[:300]
        body = response.json()
        rejected = {r["index"]: r for r in body["rejected"]}
        assert len(body["identifiers"]) == len(expect)
        want_stored = {}
        for index, (kind, *rest) in enumerate(expect):
            stored_as = body["identifiers"][index]
            if kind == "bad":
                assert index in rejected, (index, raw[:300])
                assert rejected[index]["code"] in rest[0], (rejected[index], raw[:300])
                assert rejected[index]["message"]
                assert stored_as is None
            elif kind == "dup":
                assert index not in rejected, rejected.get(index)
                assert stored_as == body["identifiers"][rest[0]]
            else:
                identifier, value = rest
                assert index not in rejected, (rejected.get(index), raw[:300])
                if identifier is None:
                    assert stored_as.startswith("md_")
                else:
                    assert stored_as == tag + identifier.removeprefix("ID-")
                want_stored[stored_as] = value
        assert body["accepted"] == len(want_stored)
        assert body["duplicates"] == sum(1 for e in expect if e[0] == "dup")
        stored = dict(
            UsageEvent.objects.filter(identifier__in=list(want_stored)).values_list(
                "identifier", "value"
            )
        )
        assert stored == want_stored

    check()
    seconds = time.monotonic() - began
    print(f"fuzz: {len(tried)} examples in {seconds:.1f} s, statuses {sorted(set(tried))}")
    assert len(tried) >= EXAMPLES
    assert all(status < 500 for status in tried)
