"""What makes a usage event valid: required fields, identifier, value, timestamp window
(Stripe's: the past 35 days, at most 5 minutes ahead; ``usage.services.ingest`` narrows
the past side to what can still be reported), and the payload hash that tells a
duplicate from a conflict. Pure functions; ``usage.services.ingest`` stores what passes.

Every malformed value is an :class:`InvalidEvent` with a code, never another exception:
strings the database cannot store (NUL, lone surrogates), digit strings too long for
``int()``, timestamps that overflow when converted to UTC, JSON numbers too long to be
parsed (:class:`OversizedNumber`, from the body parser)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MAX_IDENTIFIER = 100
# Values are whole numbers, at most MAX_VALUE per event: 10**14, so that one event
# always fits in an empty hour (MAX_HOUR_SUM below holds 9.6 of them).
MAX_VALUE = 10**14
# ... and at most MAX_HOUR_SUM per (account, meter, hour) in the rollups, so that no sum
# of hours anyone takes can overflow a signed 64-bit integer (2**63 - 1 =
# 9,223,372,036,854,775,807; SQLite's SUM() raises and PostgreSQL's bigint columns
# refuse beyond it):
# - the summary API and rollup_values: a range is at most 400 days (usage.forms
#   MAX_RANGE) and becomes whole hours once start is floored and end raised, at most
#   400 * 24 + 1 = 9,601 hour buckets: 9,601 * 9.6e14 = 9,216,960,000,000,000,000 < 2**63;
# - the reporting claim sums one billing period, at most a year (Stripe's longest
#   interval, 366 days = 8,784 hours): 8,784 * 9.6e14 = 8.43e18 < 2**63.
# (2**63 / 9,601 = 960,667,850,937,899, rounded down to 9.6e14.)
MAX_HOUR_SUM = 960 * 10**12
# Stripe's rule for meter events (design.md, "Stripe facts"): the timestamp must be
# within the past 35 days and at most 5 minutes in the future. Ingestion accepts a
# narrower past (``usage.services.ingest.oldest_accepted``): only what can still be
# reported before Stripe's 35 days run out.
PAST_WINDOW = timedelta(days=35)
FUTURE_WINDOW = timedelta(minutes=5)


class OversizedNumber(str):
    """A JSON number with more digits than any valid value or timestamp has: the body
    parser keeps its text instead of calling ``int()`` (which refuses over 4,300 digits
    and costs quadratic time before that), and validation rejects it per event."""


# More digits than MAX_VALUE or any unix time has; a longer JSON integer stays text.
MAX_DIGITS = 20


class Code:
    MISSING_FIELD = "missing_field"
    UNKNOWN_METER = "unknown_meter"
    UNKNOWN_CUSTOMER = "unknown_customer"
    INVALID_VALUE = "invalid_value"
    INVALID_TIMESTAMP = "invalid_timestamp"
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
    IDENTIFIER_TOO_LONG = "identifier_too_long"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    # Additions to the contract's list (documented in the README): an entry that is
    # not a JSON object, and an identifier that is not a non-empty string.
    INVALID_EVENT = "invalid_event"
    INVALID_IDENTIFIER = "invalid_identifier"
    # event_name or customer holds a character no database stores (NUL, lone surrogate).
    INVALID_FIELD = "invalid_field"
    # The event would make its (customer, meter, hour) sum cross MAX_HOUR_SUM.
    HOUR_LIMIT_EXCEEDED = "hour_limit_exceeded"
    # The customer's subscriptions had ended by the event's time (none covers it).
    NO_SUBSCRIPTION = "no_subscription"


@dataclass(slots=True)
class ValidEvent:
    index: int
    identifier: str
    event_name: str
    customer: str
    value: int
    timestamp: datetime
    payload_hash: str
    account_id: int = 0
    meter_id: int = 0
    # ``timestamp`` as unix seconds (it is whole seconds): what the ledger statement sends.
    epoch: int = 0


class InvalidEvent(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def storable(text: str) -> bool:
    """Whether PostgreSQL (and UTF-8) can store the string: no NUL, no lone surrogate."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _required_string(event: dict, name: str) -> str:
    value = event.get(name)
    if value is None or value == "":
        raise InvalidEvent(Code.MISSING_FIELD, f"{name}: this field is required")
    if not isinstance(value, str) or isinstance(value, OversizedNumber):
        raise InvalidEvent(Code.MISSING_FIELD, f"{name}: must be a string")
    if not storable(value):
        raise InvalidEvent(
            Code.INVALID_FIELD, f"{name}: must not contain NUL or unpaired surrogate characters"
        )
    return value


def _identifier(event: dict) -> str | None:
    identifier = event.get("identifier")
    if identifier is None:
        return None
    if (
        not isinstance(identifier, str)
        or isinstance(identifier, OversizedNumber)
        or not identifier.strip()
    ):
        raise InvalidEvent(Code.INVALID_IDENTIFIER, "identifier: must be a non-empty string")
    if not storable(identifier):
        raise InvalidEvent(
            Code.INVALID_IDENTIFIER,
            "identifier: must not contain NUL or unpaired surrogate characters",
        )
    if len(identifier) > MAX_IDENTIFIER:
        raise InvalidEvent(
            Code.IDENTIFIER_TOO_LONG,
            f"identifier: at most {MAX_IDENTIFIER} characters, got {len(identifier)}",
        )
    return identifier


def _value(event: dict) -> int:
    if "value" not in event or event["value"] is None:
        return 1
    raw = event["value"]
    if isinstance(raw, OversizedNumber):
        raise InvalidEvent(Code.INVALID_VALUE, f"value: must be between 0 and {MAX_VALUE}")
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise InvalidEvent(Code.INVALID_VALUE, "value: must be a whole number >= 0")
    if isinstance(raw, str):
        if not raw.isascii() or not raw.isdigit():
            raise InvalidEvent(Code.INVALID_VALUE, "value: must be a whole number >= 0")
        digits = raw.lstrip("0") or "0"
        if len(digits) > MAX_DIGITS:  # int() of > 4,300 digits raises; any this long is over
            raise InvalidEvent(Code.INVALID_VALUE, f"value: must be between 0 and {MAX_VALUE}")
        raw = int(digits)
    if raw < 0 or raw > MAX_VALUE:
        raise InvalidEvent(Code.INVALID_VALUE, f"value: must be between 0 and {MAX_VALUE}")
    return raw


def parse_timestamp(raw, *, name: str = "timestamp") -> datetime:
    """Unix seconds (an integer) or ISO 8601 with an offset, as an aware UTC datetime."""
    if isinstance(raw, bool):
        raise InvalidEvent(Code.INVALID_TIMESTAMP, f"{name}: must be unix seconds or ISO 8601")
    if isinstance(raw, OversizedNumber):
        raise InvalidEvent(Code.INVALID_TIMESTAMP, f"{name}: not a valid unix time")
    if isinstance(raw, int):
        try:
            return datetime.fromtimestamp(raw, UTC)
        except (OverflowError, OSError, ValueError):
            raise InvalidEvent(Code.INVALID_TIMESTAMP, f"{name}: not a valid unix time") from None
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            raise InvalidEvent(
                Code.INVALID_TIMESTAMP, f"{name}: not unix seconds or ISO 8601: {raw[:40]!r}"
            ) from None
        if parsed.tzinfo is None:
            raise InvalidEvent(
                Code.INVALID_TIMESTAMP, f"{name}: ISO 8601 needs an offset (Z or +hh:mm)"
            )
        try:
            return parsed.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00+01:00 or 9999-12-31T23:59-01:00
            raise InvalidEvent(
                Code.INVALID_TIMESTAMP, f"{name}: outside the years 1 to 9999 in UTC"
            ) from None
    raise InvalidEvent(Code.INVALID_TIMESTAMP, f"{name}: must be unix seconds or ISO 8601")


def _whole_seconds(delta: timedelta) -> timedelta:
    return timedelta(seconds=math.ceil(delta.total_seconds()))


def _timestamp(event: dict, now: datetime, oldest: datetime) -> tuple[datetime, bool]:
    """The event's time, to the second (Stripe's resolution), and whether it was given."""
    raw = event.get("timestamp")
    if raw is None:
        return now.replace(microsecond=0), False
    ts = parse_timestamp(raw).replace(microsecond=0)
    if ts < oldest:
        raise InvalidEvent(
            Code.TIMESTAMP_OUT_OF_RANGE,
            f"timestamp: must be {oldest:%Y-%m-%dT%H:%M:%SZ} or later (35 days ago, less "
            f"{_whole_seconds(oldest - (now - PAST_WINDOW))} to report it to Stripe in time)",
        )
    if ts > now + FUTURE_WINDOW:
        raise InvalidEvent(
            Code.TIMESTAMP_OUT_OF_RANGE, "timestamp: must be at most 5 minutes in the future"
        )
    return ts, True


def payload_hash(*, event_name: str, customer: str, value: int, timestamp: datetime | None) -> str:
    """What makes two events with one identifier "the same event".

    A timestamp the client left out is hashed as absent, so resending an event without
    one is a duplicate, not a conflict.
    """
    ts = None if timestamp is None else timestamp.isoformat()
    if _plain(event_name) and _plain(customer) and type(value) is int:
        # What json.dumps writes for strings it leaves as they are, without its cost.
        canonical = f'["{event_name}","{customer}",{value},' + (
            "null]" if ts is None else f'"{ts}"]'
        )
    else:
        canonical = json.dumps([event_name, customer, value, ts], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _plain(text: str) -> bool:
    """Whether ``json.dumps`` (ASCII) writes the string unescaped: printable ASCII
    (space to ``~``) without a quote or a backslash."""
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


def validate_event(index: int, event, now: datetime, *, oldest: datetime) -> ValidEvent:
    """``oldest``: the oldest timestamp accepted (at least ``now - PAST_WINDOW``)."""
    if not isinstance(event, dict):
        raise InvalidEvent(Code.INVALID_EVENT, f"events[{index}]: must be a JSON object")
    event_name = _required_string(event, "event_name")
    customer = _required_string(event, "customer")
    identifier = _identifier(event)
    value = _value(event)
    timestamp, given = _timestamp(event, now, max(oldest, now - PAST_WINDOW))
    return ValidEvent(
        epoch=int(timestamp.timestamp()),
        index=index,
        identifier=identifier or "",
        event_name=event_name,
        customer=customer,
        value=value,
        timestamp=timestamp,
        payload_hash=payload_hash(
            event_name=event_name,
            customer=customer,
            value=value,
            timestamp=timestamp if given else None,
        ),
    )


def validate_events(
    events: list, now: datetime, *, oldest: datetime
) -> tuple[list[ValidEvent], list[tuple[int, object, InvalidEvent]]]:
    """:func:`validate_event` of every event of a batch: the valid ones, and per invalid
    one its index, the event and the error.

    An event of the usual shape (strings that need no check beyond one per distinct
    name and customer in the batch, an ASCII identifier, an integer value and unix
    time inside the window, or none) is taken without the per-field functions; it gives
    exactly what :func:`validate_event` gives. Anything else (a missing or odd field,
    a time at the edge of the window, an error to word) goes through
    :func:`validate_event` itself."""
    lowest = max(oldest, now - PAST_WINDOW)
    # Whole unix seconds certainly inside [lowest, now + FUTURE_WINDOW]; a time at the
    # edge goes the careful way.
    low = math.ceil(lowest.timestamp()) + 1
    high = math.floor((now + FUTURE_WINDOW).timestamp()) - 1
    now_second = now.replace(microsecond=0)
    now_epoch = int(now_second.timestamp())
    plain: dict[str, bool] = {}  # name or customer -> fine and hashed without escaping
    # Unix minute -> its ISO 8601 text up to the seconds ("2026-03-01T12:05:"): a
    # timestamp's isoformat() is that, two digits and "+00:00", at a third of the cost.
    minutes: dict[int, str] = {}
    valid: list[ValidEvent] = []
    invalid: list[tuple[int, object, InvalidEvent]] = []
    fromtimestamp, sha256, utc = datetime.fromtimestamp, hashlib.sha256, UTC
    for index, event in enumerate(events):
        if type(event) is dict:
            name = event.get("event_name")
            customer = event.get("customer")
            identifier = event.get("identifier")
            value = event.get("value")
            raw = event.get("timestamp")
            if value is None:
                value = 1
            if (
                type(name) is str
                and type(customer) is str
                and (plain.get(name) or _plain_field(name, plain))
                and (plain.get(customer) or _plain_field(customer, plain))
                and (
                    identifier is None
                    or (
                        type(identifier) is str
                        and 0 < len(identifier) <= MAX_IDENTIFIER
                        and identifier.isascii()
                        and not identifier.isspace()
                        and "\x00" not in identifier
                    )
                )
                and type(value) is int
                and 0 <= value <= MAX_VALUE
                and (raw is None or (type(raw) is int and low <= raw <= high))
            ):
                if raw is None:
                    timestamp, epoch = now_second, now_epoch
                    tail = "null]"
                else:
                    timestamp, epoch = fromtimestamp(raw, utc), raw
                    minute, second = divmod(raw, 60)
                    prefix = minutes.get(minute)
                    if prefix is None:
                        prefix = minutes[minute] = timestamp.isoformat()[:17]
                    tail = f'"{prefix}{second:02d}+00:00"]'
                canonical = f'["{name}","{customer}",{value},{tail}'
                valid.append(
                    ValidEvent(
                        index,
                        identifier or "",
                        name,
                        customer,
                        value,
                        timestamp,
                        sha256(canonical.encode()).hexdigest(),
                        0,
                        0,
                        epoch,
                    )
                )
                continue
        try:
            valid.append(validate_event(index, event, now, oldest=oldest))
        except InvalidEvent as exc:
            invalid.append((index, event, exc))
    return valid, invalid


def _plain_field(text: str, seen: dict[str, bool]) -> bool:
    """Whether an event_name or customer passes (non-empty, storable) and is hashed
    as written (:func:`_plain` implies storable); remembered for the batch."""
    ok = seen[text] = bool(text) and _plain(text)
    return ok
