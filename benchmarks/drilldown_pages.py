"""The drill-down at scale (issue 15), on the dashboard benchmark's two accounts: p95 of
an invoice line's days (the level that sums the whole period's rollups), one day's
hours and one busy hour's events (the first keyset page, and the page after the hour's
middle event), each at 10,000,000 events in the period against the same page at 10,000.

The drill-down starts at an invoice line and the open period has none, so once the
dashboard is timed each account's test clock is advanced past its period end and the
renewal's draft hour: the emulator invoices the period the events were loaded into (the
metered line's quantity is 0: nothing was reported to Stripe; the pages read the
ledger's rollups and events, not the quantity) and ``stripe_sync_everything`` mirrors
it, as the drill-down tests do. The busy hour gets ``burst_for(n)`` of the account's
events, so that both accounts' event pages are full (100 rows) and comparable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from benchmarks import common, fixtures
from benchmarks.common import Figure, check, log, percentile

TARGET_RATIO = 1.5
BURST_EVENTS = 250  # in the busy hour: three pages of events for the 10,000 account
PAGE_ROWS = 100  # usage.selectors.drilldown.PAGE_SIZE
FINALIZE_DELAY = timedelta(hours=1, minutes=1)  # the emulator's draft hour, and a minute
LEVELS = {
    "days": "Drill-down: the period's days",
    "hours": "Drill-down: one day's hours",
    "events": "Drill-down: one hour's events, first page",
    "events_later": "Drill-down: one hour's events, page after its middle",
}


def busy_hour(period_start: datetime) -> datetime:
    """14:00 UTC on the 10th full day of the period: well inside it."""
    day = (period_start + timedelta(days=10)).replace(hour=0, minute=0, second=0, microsecond=0)
    return day + timedelta(hours=14)


def burst_for(n: int) -> int:
    return BURST_EVENTS if n >= 10 * BURST_EVENTS else 0


@dataclass
class Pages:
    """One account's drill-down URLs and what each must show."""

    label: str
    cookie: str
    urls: dict[str, str]
    expect: dict[str, bytes]


def _close_period(account):
    """Advance the account's test clock past its period end and the renewal's draft
    hour; returns the period ``(start, end)`` that was invoiced."""
    from billing.mirror.subscriptions import subscription_state_for_account
    from billing.services.test_clocks import test_clock_advance
    from billing.stripe_api import stripe_client

    state = subscription_state_for_account(account=account)
    client = stripe_client()
    clock = client.v1.customers.retrieve(fixtures.customer_id(account)).test_clock
    check(bool(clock), f"{account.name}: no test clock")
    test_clock_advance(client=client, clock_id=clock, to=state.period_end + FINALIZE_DELAY)
    return state.period_start, state.period_end


def _line(account, meter, start: datetime):
    """The mirrored invoice and its metered line of ``meter`` for the period at ``start``."""
    from billing.mirror.invoices import account_invoices

    for invoice in account_invoices(account=account):
        for line in invoice.lines:
            if line.is_metered and line.meter == meter and line.period_start == start:
                return invoice, line
    raise common.Invalid(f"{account.name}: no invoice line of {meter.event_name} for {start}")


def _count(account_id: int, meter_id: int, start: datetime, end: datetime) -> int:
    return common.raw_sql(
        "SELECT count(*) FROM usage_usageevent WHERE account_id = %s AND meter_id = %s"
        " AND timestamp >= %s AND timestamp < %s",
        [account_id, meter_id, start, end],
    )[0][0]


def _pages(label: str, account, n: int, cookie: str, meter, start: datetime) -> Pages:
    from usage.selectors.drilldown import cursor_text

    invoice, line = _line(account, meter, start)
    hour = busy_hour(start)
    day = hour.replace(hour=0)
    in_day = _count(account.pk, meter.pk, day, day + timedelta(days=1))
    in_hour = _count(account.pk, meter.pk, hour, hour + timedelta(hours=1))
    check(in_hour > 2 * PAGE_ROWS, f"{label}: {in_hour} events in the busy hour")
    # The cursor of the hour's middle event (keyset order): the page after it is full.
    ts, event_id = common.raw_sql(
        "SELECT timestamp, id FROM usage_usageevent WHERE account_id = %s AND meter_id = %s"
        " AND timestamp >= %s AND timestamp < %s ORDER BY timestamp, id OFFSET %s LIMIT 1",
        [account.pk, meter.pk, hour, hour + timedelta(hours=1), in_hour // 2],
    )[0]
    base = f"/dashboard/invoices/{invoice.id}/lines/{line.id}/"
    events = f"{base}hours/{hour:%Y-%m-%dT%H}/"
    return Pages(
        label=label,
        cookie=cookie,
        urls={
            "days": base,
            "hours": f"{base}days/{day:%Y-%m-%d}/",
            "events": events,
            "events_later": f"{events}?after={cursor_text(timestamp=ts, event_id=event_id)}",
        },
        expect={
            "days": f'data-testid="ledger-total">{n:,} '.encode(),
            "hours": f'data-testid="day-total">{in_day:,}<'.encode(),
            "events": f'data-testid="hour-total">{in_hour:,} '.encode(),
            "events_later": f'data-testid="hour-total">{in_hour:,} '.encode(),
        },
    )


def run(env, *, accounts: dict, meter, requests: int) -> dict[tuple[str, str], list[float]]:
    """Close each account's period, then time every level for both accounts, alternating
    between them; returns the samples (milliseconds) by (level, account label)."""
    from django.db import connections

    from billing.services.stripe_sync import stripe_sync_everything

    periods = {label: _close_period(account) for label, (account, _, _) in accounts.items()}
    report = stripe_sync_everything()
    check(not report.errors, f"mirror sync: {report.errors[:3]}")
    pages = [
        _pages(label, account, n, cookie, meter, periods[label][0])
        for label, (account, n, cookie) in accounts.items()
    ]
    log(f"drill-down: periods invoiced and mirrored: {periods}")
    connections.close_all()
    samples: dict[tuple[str, str], list[float]] = {(k, p.label): [] for k in LEVELS for p in pages}
    with fixtures.gunicorn(env, workers=2, threads=1) as server:
        conn = server.connection()
        for p in pages:  # validate, then warm every worker's caches
            for kind, path in p.urls.items():
                _, status, body = fixtures.get(conn, path, p.cookie)
                check(status == 200, f"{kind} {p.label}: {status} {body[:300]!r}")
                check(p.expect[kind] in body, f"{kind} {p.label}: no {p.expect[kind]!r}")
                if kind.startswith("events"):
                    rows = body.count(b'data-testid="event-row"')
                    check(rows == PAGE_ROWS, f"{kind} {p.label}: {rows} event rows")
        for _ in range(10):
            for kind in LEVELS:
                for p in pages:
                    fixtures.get(conn, p.urls[kind], p.cookie)
        for _ in range(requests):
            for kind in LEVELS:
                for p in pages:
                    ms, status, _ = fixtures.get(conn, p.urls[kind], p.cookie)
                    check(status == 200, f"{kind} {p.label}: {status}")
                    samples[(kind, p.label)].append(ms)
        conn.close()
    return samples


def figures(samples: dict[tuple[str, str], list[float]], *, big: int, small: int) -> list[Figure]:
    """p95 of each level at ``big`` events against the same page at ``small``."""
    out = []
    for kind, label in LEVELS.items():
        at_big, at_small = samples[(kind, "big")], samples[(kind, "small")]
        p95_big, p95_small = percentile(at_big, 95), percentile(at_small, 95)
        out.append(
            Figure(
                name=f"dashboard.drilldown_{kind}_p95_ms",
                label=f"{label}, p95 at {big:,} events",
                value=p95_big,
                unit="ms",
                baseline=p95_small,
                baseline_label=f"at {small:,}",
                target=f"<= {TARGET_RATIO:g}x",
                met=p95_big <= TARGET_RATIO * p95_small,
                notes="an invoiced period; gunicorn 2 workers, one sequential keep-alive client",
                extra={
                    "requests": len(at_big),
                    "p50_big_ms": percentile(at_big, 50),
                    "p50_small_ms": percentile(at_small, 50),
                },
            )
        )
    return out
