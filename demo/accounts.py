"""The demo accounts (six billed in usd, one in jpy) and the shape of their usage: plans,
meters, growth, and a day's events spread over the hours like real traffic."""

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dateutil.relativedelta import relativedelta

# Share of a day's usage by UTC hour: quiet nights, busy working hours.
HOURLY = [1, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 8, 7, 8, 8, 8, 7, 6, 5, 4, 3, 2, 2, 1]
WEEKDAY = [1.0, 1.05, 1.1, 1.05, 0.95, 0.45, 0.35]  # Mon..Sun


@dataclass(frozen=True)
class MeterPlan:
    event_name: str
    per_day: float  # units (sum) or events (count) per weekday at the start
    growth: float = 0.0  # daily growth rate
    events_per_day: int | None = None  # for sum meters: how many events carry the units
    last_values: tuple[int, ...] = ()  # for last meters: values over the history


@dataclass(frozen=True)
class DemoAccount:
    slug: str
    name: str
    plan: str
    meters: tuple[MeterPlan, ...]
    fail_last_renewal: bool = False
    extra_rules: tuple[dict, ...] = field(default_factory=tuple)
    currency: str = "usd"  # the account bills in it: the plan's prices in this currency
    # Credit grants made when the history starts: (name, category, amount in minor units).
    credits: tuple[tuple[str, str, int], ...] = field(default_factory=tuple)


ACCOUNTS = (
    DemoAccount(
        "acme",
        "Acme Analytics",
        "pro",
        (MeterPlan("api_calls", 240, growth=0.018), MeterPlan("seats", 0, last_values=(4, 5, 6))),
        extra_rules=(
            {"kind": "projected_usage_share", "meter": "api_calls", "threshold_percent": 100},
        ),
    ),
    DemoAccount(
        "bluebird",
        "Bluebird Logistics",
        "starter",
        (MeterPlan("api_calls", 260),),
        # $5.00 welcome credits, then $10.00 bought: about six weeks of 0.1-cent calls.
        credits=(("Welcome credits", "promotional", 500), ("Prepaid credits", "paid", 1_000)),
    ),
    DemoAccount(
        "cobalt",
        "Cobalt Media",
        "growth",
        (MeterPlan("data_transfer_gb", 6, growth=0.01, events_per_day=6),),
    ),
    DemoAccount(
        "delta",
        "Delta Payments",
        "scale",
        (MeterPlan("transactions", 330, growth=0.004),),
        extra_rules=({"kind": "spend", "amount": 20_000},),
    ),
    DemoAccount("evergreen", "Evergreen Health", "bulk", (MeterPlan("api_calls", 420),)),
    DemoAccount(
        "foxtrot",
        "Foxtrot Games",
        "pro",
        (MeterPlan("api_calls", 140), MeterPlan("seats", 0, last_values=(2, 3))),
        fail_last_renewal=True,
    ),
    # Billed in yen: Scale's jpy prices (graduated, whole yen). Last, so the accounts
    # before it keep the history the seed's random sequence gave them.
    DemoAccount(
        "hinode",
        "Hinode Robotics",
        "scale",
        (MeterPlan("transactions", 280, growth=0.004),),
        currency="jpy",
    ),
)


def history_start(seeded_at: datetime) -> datetime:
    """Where the seeded history begins: seven weeks or so before the seeding."""
    start = seeded_at - relativedelta(months=1) - timedelta(days=19)
    return start.replace(minute=0, second=0, microsecond=0)


def expected_day_total(meter: MeterPlan, day_index: int, day: datetime) -> float:
    """The seeded daily rate of ``meter`` on ``day``: growth and the weekday pattern."""
    return meter.per_day * (1 + meter.growth) ** day_index * WEEKDAY[day.weekday()]


def _day_total(meter: MeterPlan, day_index: int, day: datetime, rng: random.Random) -> float:
    base = expected_day_total(meter, day_index, day)
    return max(0.0, rng.gauss(base, base * 0.08))


def day_events(
    *, customer: str, slug: str, meter: MeterPlan, day_index: int, day: datetime, rng
) -> Iterator[dict]:
    """One day of events for one meter, spread over the hours like real traffic."""
    prefix = f"demo-{slug}-{meter.event_name}-{day:%Y%m%d}"
    if meter.last_values:
        step = max(1, 60 // len(meter.last_values))
        value = meter.last_values[min(len(meter.last_values) - 1, day_index // step)]
        yield {
            "event_name": meter.event_name,
            "customer": customer,
            "value": value,
            "timestamp": int((day + timedelta(hours=9)).timestamp()),
            "identifier": f"{prefix}-0",
        }
        return
    total = _day_total(meter, day_index, day, rng)
    count = meter.events_per_day or round(total)
    values = [1] * count
    if meter.events_per_day:
        share = total / count
        values = [max(1, round(rng.gauss(share, share * 0.3))) for _ in range(count)]
    hours = rng.choices(range(24), weights=HOURLY, k=count)
    for i, (hour, value) in enumerate(zip(hours, values, strict=True)):
        moment = day + timedelta(hours=hour, seconds=rng.randrange(3600))
        yield {
            "event_name": meter.event_name,
            "customer": customer,
            "value": value,
            "timestamp": int(moment.timestamp()),
            "identifier": f"{prefix}-{i}",
        }
