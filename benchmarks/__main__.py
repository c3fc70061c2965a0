"""`make bench`: every benchmark, in one environment, then one table and
``benchmarks/results/latest.json``.

    python -m benchmarks                       # the sizes make bench uses (<= 15 min, 2 cores)
    python -m benchmarks --only ingest,sweep   # a subset
    python -m benchmarks --ingest-events 1000000 --dashboard-big 10000000 ...
    python -m benchmarks --only ingest --ledger-rows 10000000   # a quicker scale stage

PostgreSQL and Redis must be reachable (``DATABASE_URL``, default
postgres://postgres@127.0.0.1:5432/meterdesk_bench, created and dropped by the run;
``REDIS_URL``, default redis://127.0.0.1:6379/2); otherwise this says so and exits 2.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback

from benchmarks import (
    bench_chart_scale,
    bench_dashboard,
    bench_entitlements,
    bench_freshness,
    bench_ingest,
    bench_reporting,
    bench_sweep,
    common,
    environment,
)

# Reporting first: a pass claims every unreported event, including other benchmarks'.
# The dashboard's 10,000,000 events last, so they slow nothing else.
BENCHMARKS = {
    "reporting": bench_reporting,
    "ingest": bench_ingest,
    # Right after ingest's scale stage, on the same big ledger database (reused).
    "chart": bench_chart_scale,
    "freshness": bench_freshness,
    "sweep": bench_sweep,
    # Before the dashboard: its 10,000,000 events would sit in the same PostgreSQL.
    "entitlements": bench_entitlements,
    "dashboard": bench_dashboard,
}
# The table and the JSON list figures in the order.
DISPLAY_ORDER = ["ingest", "freshness", "dashboard", "chart", "reporting", "sweep", "entitlements"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    environment.common_arguments(parser)
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(BENCHMARKS))
    parser.add_argument(
        "--output", default=str(common.RESULTS / "latest.json"), help="results JSON path"
    )
    parser.add_argument(
        "--ledger-rows",
        type=int,
        default=None,
        help="the big ledger's events for ingest's scale stage and the chart stage (sets "
        "--ingest-ledger-rows and --chart-rows; default 100,000,000, kept in the database "
        "bench_ingest_<rows> and reused; 0: neither stage)",
    )
    # Each benchmark's own options, prefixed with its name (--ingest-events, ...).
    for name, module in BENCHMARKS.items():
        group = argparse.ArgumentParser(add_help=False)
        module.add_arguments(group)
        for action in group._actions:
            if action.help == argparse.SUPPRESS:
                continue
            option = "--" + name + "-" + action.option_strings[0].lstrip("-")
            kwargs = {
                "dest": f"{name}__{action.dest}",
                "default": action.default,
                "help": action.help,
            }
            if action.nargs == 0:
                store_false = isinstance(action, argparse._StoreFalseAction)
                kwargs["action"] = "store_false" if store_false else "store_true"
            else:
                kwargs["type"] = action.type
            parser.add_argument(option, **kwargs)
    args = parser.parse_args(argv)
    if args.ledger_rows is not None:
        args.ingest__ledger_rows = args.ledger_rows
        args.chart__rows = args.ledger_rows
    return args


def options_for(args, name: str) -> argparse.Namespace:
    prefix = name + "__"
    own = {k[len(prefix) :]: v for k, v in vars(args).items() if k.startswith(prefix)}
    return argparse.Namespace(**own)


def main(argv=None) -> int:
    args = parse_args(argv)
    selected = [n for n in args.only.split(",") if n] or list(BENCHMARKS)
    unknown = set(selected) - set(BENCHMARKS)
    if unknown:
        print(f"unknown benchmarks: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    started = time.time()
    commit = common.git_commit()  # the code measured, not whatever HEAD is at the end
    figures: list[common.Figure] = []
    failures: list[str] = []
    sizes = {}
    try:
        with environment.environment(args) as env:
            load_before = common.loadavg()
            for name in selected:
                options = options_for(args, name)
                sizes[name] = common.vars_of(options)
                common.log(f"=== {name} {sizes[name]}")
                with common.Timer() as t:
                    try:
                        figures += BENCHMARKS[name].run(env, options)
                    except common.PartlyFailed as exc:
                        figures += exc.figures
                        failures.append(f"{name}: {exc}")
                    except common.Invalid as exc:
                        failures.append(f"{name}: INVALID RESULT: {exc}")
                    except Exception:
                        failures.append(f"{name}: {traceback.format_exc()}")
                common.log(f"=== {name} done in {t.seconds:.0f}s")
                sizes[name]["seconds"] = round(t.seconds, 1)
            sizes["loadavg_before"] = load_before
            sizes["loadavg_after"] = common.loadavg()
            figures.sort(key=lambda f: DISPLAY_ORDER.index(f.name.split(".")[0]))
            print(common.table(figures))
            common.write_results(
                figures,
                sizes=sizes,
                path=common.Path(args.output),
                started=started,
                failures=failures,
                commit=commit,
            )
            print(f"\nwritten: {args.output} ({time.time() - started:.0f}s in all)")
    except common.ServiceUnavailable as exc:
        print(f"make bench needs PostgreSQL and Redis, and cannot run: {exc}", file=sys.stderr)
        return 2
    for failure in failures:
        print(f"\nFAILED {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
