"""Print a results file as a Markdown table, or write it into the README's "Performance"
section between ``<!-- bench-table -->`` and ``<!-- /bench-table -->``.

python -m benchmarks.report [benchmarks/results/latest.json]
python -m benchmarks.report --readme [benchmarks/results/latest.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks.common import RESULTS, Figure, fmt

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- bench-table -->", "<!-- /bench-table -->"


def markdown(data: dict) -> str:
    lines = [
        "| figure | measured | baseline (same run) | ratio | target | met? |",
        "|---|---:|---|---:|---|:-:|",
    ]
    for raw in data["figures"]:
        f = Figure(**{k: v for k, v in raw.items() if k != "ratio"})
        baseline = "-" if f.baseline is None else fmt(f.baseline, f.unit)
        if f.baseline is not None and f.baseline_label:
            baseline += f" ({f.baseline_label})"
        ratio = "-" if f.ratio is None else f"{f.ratio:.3g}"
        met = "-" if f.met is None else ("yes" if f.met else "**no**")
        label = f.label.strip()
        if f.label.startswith(" "):
            label = "&nbsp;&nbsp;" + label
        lines.append(
            f"| {label} | {fmt(f.value, f.unit)} | {baseline} | {ratio} | {f.target or '-'} "
            f"| {met} |"
        )
    machine = data["machine"]
    lines.append("")
    lines.append(
        f"Measured {data['timestamp']} at commit `{data['commit'][:12]}`, "
        f"{machine['cores']} cores, {machine['ram_bytes'] / 2**30:.1f} GiB RAM, PostgreSQL "
        f"{data['postgres'].split()[0]}, {data['duration_seconds']:.0f} s in all"
        f"{_load_text(data)}."
    )
    return "\n".join(lines)


def _load_text(data: dict) -> str:
    """The 1-minute load average before and after the run, when the results have it."""
    sizes = data.get("sizes") or {}
    before, after = sizes.get("loadavg_before"), sizes.get("loadavg_after")
    if not before or not after:
        return ""
    return f", load average {before[0]:.2f} before and {after[0]:.2f} after"


def readme_write(data: dict, readme: Path = README) -> None:
    """Replace the table between the markers with this results file's table."""
    text = readme.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{markdown(data)}\n{END}{tail}")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    write = "--readme" in argv
    argv = [a for a in argv if a != "--readme"]
    path = Path(argv[0]) if argv else RESULTS / "latest.json"
    data = json.loads(path.read_text())
    if write:
        readme_write(data)
        print(f"README.md: table written from {path}")
    else:
        print(markdown(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
