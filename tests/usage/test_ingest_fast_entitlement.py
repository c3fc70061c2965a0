"""Ingestion's entitlement recording in one short message per batch (issue 19): per
account its total per meter, or its newest event for a last meter, when the hash's
period holds the whole batch; event by event (the script it replaces) only for an
account whose batch straddles its period's edge. Checked against that script on real
Redis: the same hashes after, the same replies, in random batches around both edges."""

import json
import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime

import pytest
import redis as redis_lib

from usage.event_validation import ValidEvent
from usage.services import entitlement_ingest as ei
from usage.services import entitlement_state as state

AGGREGATIONS = {1: "count", 2: "sum", 3: "last"}
START = 1_767_225_600  # 2026-01-01T00:00:00Z, unix seconds


@pytest.fixture
def handle(redis_url, settings):
    settings.REDIS_URL = redis_url
    settings.ENTITLEMENT_KEY_PREFIX = f"md:test-fast-{uuid.uuid4().hex}:"
    client = redis_lib.Redis.from_url(redis_url)
    yield state._Redis(redis_url)
    for key in client.scan_iter(f"{settings.ENTITLEMENT_KEY_PREFIX}*"):
        client.delete(key)


def _hashes(accounts, rng) -> dict[str, dict]:
    """A hash per account but the last (no hash: cold): its period, meters 1-3 (one of
    them sometimes missing), last-value times and ids."""
    out = {}
    for account_id in accounts[:-1]:
        # The period starts 100 s into the window, half a second off the second.
        ps = (START + 100) * 1_000_000 + 500_000
        pe = ps + 200 * 1_000_000
        fields = {"ps": ps, "pe": pe, "hc": 0, "v": "tok"}
        for meter_id in AGGREGATIONS:
            if rng.random() < 0.8:
                fields[f"m:{meter_id}"] = rng.randint(0, 50)
        if rng.random() < 0.5:
            fields["t:3"] = (START + rng.randint(90, 320)) * 1_000_000
            fields["i:3"] = rng.randint(1, 40)
        out[state.key("use", account_id)] = fields
    return out


def _batch(accounts, rng, *, straddle: bool):
    rows, event_ids = [], {}
    for index in range(rng.randint(1, 12)):
        account_id = rng.choice(accounts)
        # Inside the period [100.5 s, 300.5 s), or often a second or two off its edges.
        if straddle and rng.random() < 0.4:
            second = rng.choice([98, 99, 100, 101, 102, 299, 300, 301, 302])
        else:
            second = rng.randint(101, 300)
        identifier = f"e{index}"
        rows.append(
            ValidEvent(
                index=index,
                identifier=identifier,
                event_name="m",
                customer="c",
                value=rng.randint(0, 10**14),
                timestamp=datetime.fromtimestamp(START + second, UTC),
                payload_hash="h",
                account_id=account_id,
                meter_id=rng.choice(list(AGGREGATIONS)),
                epoch=START + second,
            )
        )
        event_ids[identifier] = rng.randint(1, 40)  # ties on time and id both happen
    return rows, event_ids


def _reference(r, by_account, accounts, event_ids):
    """The script replaced in the usual case: every account's events one by one."""
    keys = [k for a in accounts for k in (state.key("use", a), state.key("ver", a))]
    spec = [ei._detailed_spec(by_account[a], event_ids, AGGREGATIONS) for a in accounts]
    return r.script("apply", ei._APPLY)(keys=keys, args=[json.dumps(spec)])


@pytest.mark.parametrize("straddle", [False, True])
def test_totals_leave_the_hashes_and_replies_the_events_one_by_one_left(handle, straddle):
    rng = random.Random(f"fast-{straddle}")
    client = handle.client
    straddled = 0
    for _ in range(150):
        accounts = [101, 102, 103]
        hashes = _hashes(accounts, rng)
        rows, event_ids = _batch(accounts, rng, straddle=straddle)
        by_account = defaultdict(list)
        for row in rows:
            by_account[row.account_id].append(row)
        present = sorted(by_account)
        answers = {}
        for how in ("reference", "totals"):
            for key in hashes:
                client.delete(key)
                client.hset(key, mapping=hashes[key])
            if how == "reference":
                replies = _reference(handle, by_account, present, event_ids)
            else:
                replies = ei._apply(handle, by_account, present, event_ids, AGGREGATIONS)
            answers[how] = (
                [list(reply) for reply in replies],
                {key: client.hgetall(key) for key in hashes},
            )
        assert answers["totals"] == answers["reference"]
        straddled += any(
            min(r.epoch for r in by_account[a]) * 10**6 < hashes[state.key("use", a)]["ps"]
            or max(r.epoch for r in by_account[a]) * 10**6 >= hashes[state.key("use", a)]["pe"]
            for a in present
            if state.key("use", a) in hashes
        )
    # The batches did what they were meant to: stay inside, or cross an edge.
    assert (straddled > 10) if straddle else (straddled == 0)
