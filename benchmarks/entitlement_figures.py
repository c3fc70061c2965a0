"""The entitlement benchmark's figures: the check against the trivial view at the
offered rate, the closed-loop maximum, CPU per request, and the Redis outage."""

from __future__ import annotations

from benchmarks.common import Figure

TARGET_P99_MS = 5.0


def figures(args, results: dict, validation: dict, outage: dict | None) -> list[Figure]:
    c, t = results["check"], results["trivial"]
    rate = f"{args.rate:,.0f}/s"
    server = f"gunicorn {args.workers}w x {args.threads}t gthread"
    base = {"baseline_label": "trivial view"}
    keeps_up = c["throughput"] >= 0.98 * args.rate and c["errors"] == 0
    out = [
        Figure(
            name="entitlements.check_p99_ms",
            label=f"Entitlement check p99 at {rate}",
            value=c["p99_ms"],
            unit="ms",
            baseline=t["p99_ms"],
            target=f"<= {TARGET_P99_MS:g} ms at {rate}",
            met=c["p99_ms"] <= TARGET_P99_MS and keeps_up,
            notes=f"{server}; open loop, {args.connections} keep-alive connections from "
            f"{args.clients} client processes; {args.rounds} x {args.phase_seconds:g} s "
            f"phases each; errors {c['errors']} (trivial view {t['errors']})",
            extra={
                "check": c,
                "trivial": t,
                "validation": validation,
                "profile": results.get("profile", {}),
            },
            **base,
        ),
        Figure("entitlements.check_p50_ms", "  p50", c["p50_ms"], "ms", t["p50_ms"], **base),
        Figure("entitlements.check_max_ms", "  max", c["max_ms"], "ms", t["max_ms"], **base),
        Figure(
            "entitlements.check_rate",
            f"  answered/s (offered {rate})",
            c["throughput"],
            "/s",
            t["throughput"],
            **base,
        ),
    ]
    if "max_throughput" in c:
        out.append(
            Figure(
                "entitlements.check_max_rate",
                "  most answered/s (closed loop)",
                c["max_throughput"],
                "/s",
                t["max_throughput"],
                **base,
            )
        )
    out += [
        Figure(
            "entitlements.server_cpu_us",
            "  server CPU per request",
            c["server_cpu_us"],
            "us",
            t["server_cpu_us"],
            **base,
        ),
        Figure(
            "entitlements.mismatches",
            "  answers != ledger, errors (Redis up)",
            c["mismatches"] + validation["mismatches"] + c["errors"],
            "",
            target="0",
            met=c["mismatches"] + validation["mismatches"] + c["errors"] == 0,
        ),
    ]
    cpu = results.get("profile", {}).get("inprocess_cpu_us")
    if cpu:
        out.append(
            Figure(
                "entitlements.inprocess_cpu_us",
                "  CPU per request in Django alone (in-process)",
                cpu["check"],
                "us",
                cpu["trivial"],
                **base,
            )
        )
        queries = results["profile"]["queries_without_redis"]
        out.append(
            Figure(
                "entitlements.fallback_cpu_us",
                f"  same, Redis down (database fallback, {queries} queries)",
                cpu["check_without_redis"],
                "us",
                cpu["check"],
                baseline_label="Redis up",
            )
        )
    if "batch" in results:
        b = results["batch"]
        out.append(
            Figure(
                "entitlements.batch_p99_ms",
                f"  POST of {args.batch} checks each, {rate} checks: p99",
                b["p99_ms"],
                "ms",
                t["p99_ms"],
                notes=f"{b['checks_per_second']:,.0f} checks/s answered, {b['errors']} errors, "
                f"{b['mismatches']} answers != ledger",
                extra=b,
                **base,
            )
        )
    if outage:
        seg = outage["segments"]
        wrong = seg["all"]["mismatches"] + outage["validation"]["mismatches"]
        stopped = outage["mode"] == "stop"
        what = "stopped" if stopped else "frozen (SIGSTOP)"
        out += [
            Figure(
                "entitlements.outage_p99_ms",
                f"Redis {what} mid-run: check p99 while down, at {outage['rate']:,.0f}/s",
                seg["down"]["p99_ms"],
                "ms",
                seg["up"]["p99_ms"],
                baseline_label="Redis up",
                notes="the same offered rate before, during and after; answered/s while down "
                f"{seg['down']['throughput']:,.0f}",
                extra=outage,
            ),
            Figure(
                "entitlements.outage_back_p99_ms",
                "  p99 once Redis is back" + (" (empty)" if stopped else ""),
                seg["back"]["p99_ms"],
                "ms",
                seg["up"]["p99_ms"],
                baseline_label="Redis up",
            ),
            Figure(
                "entitlements.outage_errors",
                "  non-200 answers (up, down, back)",
                seg["all"]["errors"],
                "",
                target="0",
                met=seg["all"]["errors"] == 0,
                extra={"requests": seg["all"]["requests"]},
            ),
            Figure(
                "entitlements.outage_mismatches",
                "  answers != ledger (up, down, back)",
                wrong,
                "",
                target="0",
                met=wrong == 0,
                extra={"requests": seg["all"]["requests"]},
            ),
        ]
    return out
