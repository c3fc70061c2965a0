"""Render the fault matrix's results file as the Markdown table the README shows.

    python -m tests.reliability.report [var/reliability/results.json] [--seconds N]

``--seconds`` adds the wall time of the whole run (``make reliability`` passes it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "var" / "reliability" / "results.json"
COLUMNS = [
    ("case", lambda c: f"({c['case'][0]}) {c['title']}"),
    ("fault injected", lambda c: c["faults"]),
    ("events sent", lambda c: f"{c['sent']:,}"),
    ("stored", lambda c: f"{c['stored']:,}"),
    ("reported", lambda c: f"{c['reported']:,}"),
    ("lost", lambda c: f"{c['lost']:,}"),
    ("double-billed", lambda c: f"{c['double']:,}"),
    ("periods checked", lambda c: f"{c['periods']:,}"),
    ("reports (resent)", lambda c: f"{c['reports']:,} ({c['resent_reports']:,})"),
    ("ingest 5xx retried", lambda c: f"{c['api_5xx']:,}"),
    ("s", lambda c: f"{c['seconds']:.1f}"),
]


def render(data: dict, *, seconds: float | None = None) -> str:
    cases = [data["cases"][k] for k in sorted(data.get("cases", {}))]
    lines = [
        "| " + " | ".join(name for name, _ in COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    lines += ["| " + " | ".join(cell(c) for _, cell in COLUMNS) + " |" for c in cases]
    when = max((c["at"] for c in cases), default="-")
    databases = sorted({c["database"] for c in cases})
    footer = (
        f"\n{len(cases)} cases, {data.get('mode', '?')} matrix on {', '.join(databases)}"
        f", last at {when}"
    )
    if seconds is not None:
        footer += f"; whole run {seconds:.0f} s"
    units = "lost and double-billed are units of the meter (events for count meters)"
    return "\n".join(lines) + footer + f". {units}."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=str(DEFAULT))
    parser.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args(argv)
    path = Path(args.path)
    if not path.exists():
        print(f"no results at {path}: run `make reliability` first", file=sys.stderr)
        return 1
    print(render(json.loads(path.read_text()), seconds=args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
