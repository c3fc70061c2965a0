"""Entitlement check under load: ``GET /api/v1/entitlements/check`` served by gunicorn
(production settings, ingest key) at a fixed offered rate, against the same-run baseline
of a trivial Django view in the same server (``/bench/trivial``, benchmarks/urls.py:
the whole middleware stack, no work). Then the same check on a second server while its
Redis is stopped mid-run and started again empty (``--outage-mode pause``: frozen with
SIGSTOP, then resumed): every answer must still be a 200 and agree with the ledger.

Accounts are on the Scale plan (graduated tiers with flat fees on the ``transactions``
count meter) with a hard-capped units budget and a hard-capped spend budget, in four
profiles (well under, near the units cap, at it, near the spend cap); their usage is
ingested through ``POST /api/v1/usage/events`` first. The expected answers are computed
here from the ledger (a ``count(*)`` of the period's events) and the catalog's tiers,
with none of the application's budget or pricing code.

Load is open loop (benchmarks/open_loop.py): requests due at ``t0 + k / rate`` over
persistent connections, latency from the *due* time. Baseline and check alternate in
phases (A B B A ...) at the same rate, with the same server and connections; then each
closed loop (back to back) for the most it answers. Each server runs on its own private
redis-server, so the shared Redis is never stopped. ``--profile``: CPU per request and a
cProfile of the check in-process, and py-spy on the server under load when installed.

    python -m benchmarks.bench_entitlements --rate 2000 --phase-seconds 10 --rounds 2 --profile
"""

from __future__ import annotations

import contextlib
import sys

from benchmarks import (
    entitlement_figures,
    environment,
    fixtures,
    inprocess_profile,
    open_loop,
    private_services,
    pyspy_profile,
)
from benchmarks.common import Figure, check, log
from benchmarks.entitlement_accounts import (
    CHECK_PATH,
    TRIVIAL_PATH,
    batches,
    expectations,
    ingest,
    make_accounts,
    scale_tiers,
)


def add_arguments(parser) -> None:
    parser.add_argument("--rate", type=float, default=2000.0, help="offered requests/s")
    parser.add_argument("--phase-seconds", type=float, default=8.0, help="seconds per phase")
    parser.add_argument("--rounds", type=int, default=2, help="baseline+check phase pairs")
    parser.add_argument("--accounts", type=int, default=8, help="accounts per server")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    # One thread per worker: a thread back from Redis or PostgreSQL waits for the GIL
    # for up to the 5 ms switch interval while another runs, the whole p99 budget; three
    # processes keep both cores busy while one of them waits on I/O.
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker")
    parser.add_argument(
        "--saturation-seconds", type=float, default=4.0, help="closed-loop seconds per URL"
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=20,
        help="also POST batches of this many checks at --rate checks/s (0 skips it)",
    )
    parser.add_argument(
        "--outage-seconds",
        type=float,
        default=12.0,
        help="the Redis phase: down from 1/3 to 2/3 (see --outage-mode); 0 skips it",
    )
    parser.add_argument(
        "--outage-rate",
        type=float,
        default=0.0,
        help="offered requests/s in the Redis phase (default: --rate)",
    )
    parser.add_argument(
        "--outage-mode",
        choices=("stop", "pause"),
        default="stop",
        help="stop: kill Redis, start it again empty; pause: SIGSTOP, then SIGCONT",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile of the check in-process, then one more check phase under py-spy "
        "($PY_SPY or py-spy on the PATH)",
    )
    parser.add_argument(
        "--check-path",
        default=CHECK_PATH,
        help=f"the endpoint measured (default {CHECK_PATH}); {TRIVIAL_PATH} tries the "
        "harness alone (its answers are then not compared)",
    )


def validate(port: int, requests, expected) -> dict:
    """Each check request once, no load: (mismatches, an example) -- a 404 or 500 stops."""
    samples = open_loop.run(
        port=port,
        requests=requests,
        expected=expected,
        rate=50,
        seconds=len(requests) / 50,
        connections=1,
        processes=1,
    )
    bad = [e for e in samples.examples if e["status"] != 200]
    check(not bad, f"the check does not answer 200: {bad[:2]}")
    return {"mismatches": sum(samples.mismatch), "examples": samples.examples[:3]}


# -- load ---------------------------------------------------------------------------------
def _phase(server, args, requests, expected=None, *, rate=None, seconds=None, actions=()):
    """One open-loop (or closed-loop, rate 0) run, with the server's and machine's CPU."""
    pids = [server.proc.pid, *server.worker_pids()]
    cpu0, (busy0, total0) = private_services.cpu_seconds(pids), private_services.machine_busy()
    samples = open_loop.run(
        port=server.port,
        requests=requests,
        expected=expected,
        rate=args.rate if rate is None else rate,
        seconds=args.phase_seconds if seconds is None else seconds,
        connections=args.connections,
        processes=args.clients,
        actions=actions,
    )
    busy1, total1 = private_services.machine_busy()
    samples.server_cpu_seconds = private_services.cpu_seconds(pids) - cpu0
    samples.machine_busy = (busy1 - busy0) / max(1, total1 - total0)
    return samples


def _merge(runs: list) -> dict:
    """Summary of several phases of one URL: latencies pooled, rates averaged."""
    pooled = open_loop.Samples(t0=0.0, rate=runs[0].rate)
    for run in runs:
        pooled.extend(run)
    out = pooled.summary()
    out["throughput"] = sum(r.summary()["throughput"] for r in runs) / len(runs)
    out["server_cpu_us"] = 1e6 * sum(r.server_cpu_seconds for r in runs) / max(1, out["ok"])
    out["client_cpu_us"] = 1e6 * pooled.client_cpu_seconds / max(1, out["requests"])
    out["machine_busy"] = round(sum(r.machine_busy for r in runs) / len(runs), 3)
    out["examples"] = pooled.examples[:3]
    return out


def load_phases(server, args, check_requests, check_expected, trivial_requests) -> dict:
    kinds = {"trivial": (trivial_requests, None), "check": (check_requests, check_expected)}
    _phase(server, args, check_requests, seconds=2)  # warm every worker and connection
    runs = {"trivial": [], "check": []}
    for r in range(args.rounds):
        for kind in ("trivial", "check") if r % 2 == 0 else ("check", "trivial"):
            samples = _phase(server, args, *kinds[kind])
            runs[kind].append(samples)
            s = samples.summary()
            log(
                f"entitlements: {kind} at {args.rate:,.0f}/s: p50 {s['p50_ms']:.2f} ms, p99 "
                f"{s['p99_ms']:.2f} ms, {s['throughput']:,.0f}/s, errors {s['errors']}, "
                f"mismatches {s['mismatches']}, machine busy {samples.machine_busy:.0%}"
            )
    out = {kind: _merge(kind_runs) for kind, kind_runs in runs.items()}
    if args.saturation_seconds:
        for kind in ("trivial", "check"):
            samples = _phase(server, args, *kinds[kind], rate=0, seconds=args.saturation_seconds)
            out[kind]["max_throughput"] = samples.summary()["throughput"]
            log(f"entitlements: {kind} closed loop: {out[kind]['max_throughput']:,.0f}/s")
    return out


def batch_phase(server, args, key: str, checks, expected) -> dict:
    """The same checks as POSTs of ``--batch`` each, at ``--rate`` checks a second."""
    requests, answers = batches(
        checks, expected, args.batch, port=server.port, key=key, path=args.check_path
    )
    samples = _phase(
        server,
        args,
        requests,
        answers,
        rate=args.rate / args.batch,
        seconds=args.phase_seconds * args.rounds,
    )
    out = _merge([samples])
    out["checks_per_second"] = out["throughput"] * args.batch
    log(f"entitlements: POST of {args.batch} checks: {out}")
    return out


def profile_phase(env, server, args, redis_url: str, requests, expected, trivial) -> dict:
    """Where a check's time goes: CPU per request and cProfile in this process (Django's
    handler on the same private Redis), then py-spy on the server under load."""
    from django.db import connections
    from django.test import override_settings

    with override_settings(REDIS_URL=redis_url):
        out = {
            "inprocess_cpu_us": {
                "trivial": inprocess_profile.cpu_per_request(trivial),
                "check": inprocess_profile.cpu_per_request(requests),
            },
            "cprofile": inprocess_profile.profile(requests),
        }
    with override_settings(REDIS_URL=""):  # the fallback: everything from the database
        out["inprocess_cpu_us"]["check_without_redis"] = inprocess_profile.cpu_per_request(
            requests, n=300
        )
        out["queries_without_redis"] = inprocess_profile.queries(requests[0])
        out["cprofile_without_redis"] = inprocess_profile.profile(requests, n=200)
    connections.close_all()  # the load generator forks
    log(
        f"entitlements: in-process CPU per request (us): {out['inprocess_cpu_us']}; "
        f"queries without Redis: {out['queries_without_redis']}"
    )
    for name in ("cprofile", "cprofile_without_redis"):
        for kind in ("cumulative", "own"):
            for row in out[name][kind]:
                log(f"entitlements: {name} {kind}: {row}")
    raw = env.tmp / "entitlements-pyspy.txt"  # collapsed stacks, summarized below
    with pyspy_profile.recording(server.proc.pid, raw) as recording:
        if not recording:
            log("entitlements: py-spy not found ($PY_SPY or on the PATH): no server profile")
            return out
        out["check_under_pyspy"] = _phase(server, args, requests, expected).summary()
    out["pyspy_all"] = pyspy_profile.summary(raw, top=15)
    out["pyspy_requests"] = pyspy_profile.summary(raw, within="django/core/handlers/wsgi.py")
    log(f"entitlements: py-spy, all server samples: {out['pyspy_all']}")
    log(f"entitlements: py-spy, within Django's handler: {out['pyspy_requests']}")
    return out


def outage_phase(env, args, key: str, tiers) -> dict:
    """A fresh server on a fresh private Redis: accounts ingested through it, then the
    check at the offered rate while Redis is down from 1/3 to 2/3 of the phase:
    ``stop`` kills it and starts it again empty, ``pause`` freezes it (SIGSTOP: it
    accepts connections and never answers, as behind a dead network) and resumes it."""
    from django.db import connections

    with contextlib.ExitStack() as stack:
        redis_server = stack.enter_context(private_services.PrivateRedis(env.tmp))
        with private_services.environ(REDIS_URL=redis_server.url):
            server = stack.enter_context(
                fixtures.gunicorn(env, workers=args.workers, threads=args.threads)
            )
        accounts = make_accounts(env, args.accounts, "outage")
        ingest(server, key, accounts, "outage")
        requests, expected, _ = expectations(
            accounts, tiers, port=server.port, key=key, path=args.check_path
        )
        connections.close_all()
        before = validate(server.port, requests, expected)
        down, back = {
            "stop": (redis_server.stop, redis_server.start),
            "pause": (redis_server.pause, redis_server.resume),
        }[args.outage_mode]
        third = args.outage_seconds / 3
        samples = _phase(
            server,
            args,
            requests,
            expected,
            rate=args.outage_rate or args.rate,
            seconds=args.outage_seconds,
            actions=[(third, "redis_down", down), (2 * third, "redis_back", back)],
        )
    went, came = samples.events["redis_down"], samples.events["redis_back"]
    segments = {
        "up": samples.summary(0, went),
        "down": samples.summary(went, came),
        "back": samples.summary(came),
        "all": samples.summary(),
    }
    for name, s in segments.items():
        log(f"entitlements: Redis {name}: {s}")
    return {
        "mode": args.outage_mode,
        "rate": args.outage_rate or args.rate,
        "segments": segments,
        "validation": before,
        "examples": samples.examples[:5],
    }


# -- the benchmark ------------------------------------------------------------------------
def run(env: environment.Env, args) -> list[Figure]:
    from django.db import connections

    tiers, key = scale_tiers(), fixtures.ingest_key()
    accounts = make_accounts(env, args.accounts, "load")
    connections.close_all()
    with (
        private_services.PrivateRedis(env.tmp) as redis_server,
        private_services.environ(REDIS_URL=redis_server.url),
        fixtures.gunicorn(env, workers=args.workers, threads=args.threads) as server,
    ):
        log(f"entitlements: ingesting {sum(a['events'] for a in accounts):,} events")
        ingest(server, key, accounts, "load")
        check_requests, check_expected, checks = expectations(
            accounts, tiers, port=server.port, key=key, path=args.check_path
        )
        connections.close_all()  # the load generator forks
        validation = validate(server.port, check_requests, check_expected)
        trivial = [open_loop.http_get(TRIVIAL_PATH, port=server.port)]
        results = load_phases(server, args, check_requests, check_expected, trivial)
        if args.batch and args.check_path != TRIVIAL_PATH:
            results["batch"] = batch_phase(server, args, key, checks, check_expected)
        if args.profile:
            results["profile"] = profile_phase(
                env, server, args, redis_server.url, check_requests, check_expected, trivial
            )
    outage = outage_phase(env, args, key, tiers) if args.outage_seconds else None
    return entitlement_figures.figures(args, results, validation, outage)


def main() -> int:
    return environment.main_for(sys.modules[__name__])


if __name__ == "__main__":
    raise SystemExit(main())
