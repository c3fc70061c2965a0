"""Print a results file as a Markdown table (for the README's "Performance" section).

python -m benchmarks.report [benchmarks/results/latest.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks.common import RESULTS, Figure, fmt


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
        f"{data['postgres'].split()[0]}, {data['duration_seconds']:.0f} s in all."
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0]) if argv else RESULTS / "latest.json"
    print(markdown(json.loads(path.read_text())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
