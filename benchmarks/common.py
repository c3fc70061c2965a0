"""What every benchmark shares: constants, figures and the table, the machine, raw SQL
and the results file. The environment (services, a throwaway database, Django in
production settings, the Stripe emulator) is :mod:`benchmarks.environment`; accounts and
gunicorn are :mod:`benchmarks.fixtures`.

A benchmark module exposes ``add_arguments(parser)`` and ``run(env, args) -> list[Figure]``
and ends with ``environment.main_for(module)``; ``python -m benchmarks`` runs them all in
one environment, ``python -m benchmarks.bench_<name>`` one of them in its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/meterdesk_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/2"
SECRET_KEY = "meterdesk-benchmarks-not-a-secret-0123456789abcdef"
CATALOG = ROOT / "billing" / "catalog" / "demo.toml"


class ServiceUnavailable(RuntimeError):
    pass


class Invalid(AssertionError):
    """A benchmark's own result check failed: its figures must not be reported."""


class PartlyFailed(Exception):
    """A later stage of a benchmark failed: ``figures`` (the earlier stages') stand."""

    def __init__(self, message: str, figures: list):
        super().__init__(message)
        self.figures = figures


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Invalid(message)


# -- figures and the table -----------------------------------------------------------------
@dataclass
class Figure:
    """One measured number, next to its same-run baseline and its target when it has them."""

    name: str  # stable key, e.g. "ingest.events_per_second"
    label: str  # what the table shows
    value: float
    unit: str
    baseline: float | None = None  # same-run baseline (same unit)
    baseline_label: str = ""
    target: str = ""  # human text, e.g. ">= 25,000/s"
    met: bool | None = None  # None: no target
    notes: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.value / self.baseline


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "ms":
        text = f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
    elif unit == "ratio" or abs(value) < 10:
        text = f"{value:,.3g}" if value else "0"
    else:
        text = f"{value:,.0f}"
    suffix = {"": "", "ratio": "x", "%": "%"}.get(unit, f" {unit}")
    return text + suffix


def table(figures: list[Figure]) -> str:
    rows = [("figure", "measured", "baseline (same run)", "ratio", "target", "met?")]
    for f in figures:
        baseline = fmt(f.baseline, f.unit) if f.baseline is not None else "-"
        if f.baseline_label and f.baseline is not None:
            baseline += f" ({f.baseline_label})"
        ratio = f"{f.ratio:.3g}" if f.ratio is not None else "-"
        met = "-" if f.met is None else ("yes" if f.met else "NO")
        rows.append((f.label, fmt(f.value, f.unit), baseline, ratio, f.target or "-", met))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append(
            " | ".join(
                cell.ljust(widths[i]) if i in (0, 2, 4) else cell.rjust(widths[i])
                for i, cell in enumerate(row)
            )
        )
        if n == 0:
            lines.append("-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        raise ValueError("no samples")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil
    return ordered[int(rank) - 1]


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


# -- machine ---------------------------------------------------------------------------
def machine() -> dict:
    mem_total = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total = int(line.split()[1]) * 1024
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "ram_bytes": mem_total,
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def loadavg() -> list[float]:
    """1, 5 and 15 minute load averages: the machine is shared, so they go in the results."""
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def git_commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def proc_status(pid: int) -> dict[str, int]:
    """VmHWM / VmRSS of a live process, in bytes (0 when it is gone)."""
    out = {"VmHWM": 0, "VmRSS": 0}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in out:
                out[key] = int(rest.split()[0]) * 1024
    return out


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found.append(int(entry.name))
    return found


def raw_sql(sql: str, params=None, *, fetch: bool = True):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if fetch and cursor.description else None


# -- running ---------------------------------------------------------------------------
def write_results(
    figures: list[Figure],
    *,
    sizes: dict,
    path: Path,
    started: float,
    failures=(),
    commit: str | None = None,
) -> None:
    from django.db import connection

    pg_version = raw_sql("SHOW server_version")[0][0]
    pg_settings = {
        name: raw_sql(f"SHOW {name}")[0][0]
        for name in ("shared_buffers", "work_mem", "max_wal_size", "synchronous_commit")
    }
    data = {
        "commit": commit or git_commit(),
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_seconds": round(time.time() - started, 1),
        "machine": machine(),
        "postgres": pg_version,
        "postgres_settings": pg_settings,
        "database": connection.settings_dict["NAME"],
        "sizes": sizes,
        "figures": [{**asdict(f), "ratio": f.ratio} for f in figures],
        "failures": list(failures),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def vars_of(args) -> dict:
    skip = {"database_url", "redis_url", "keep_db", "json", "fresh_schema"}
    return {k: v for k, v in vars(args).items() if k not in skip and not callable(v)}
