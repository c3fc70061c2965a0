"""Smoke tests of the benchmark harness: no timing, no services.

The benchmarks themselves need PostgreSQL, Redis, gunicorn and the emulator and take
minutes (``make bench``); running their core at a tiny size here would cost far more
than the suite's budget, so these tests cover what can break silently instead: the
options ``python -m benchmarks`` forwards to each benchmark, the table, percentiles, and
the clear exit when the services are missing.
"""

import argparse
import http.server
import json
import selectors
import socket
import threading
from decimal import Decimal

import pytest

from benchmarks import __main__ as runner
from benchmarks import (
    common,
    entitlement_accounts,
    entitlement_figures,
    environment,
    open_loop,
    pyspy_profile,
)


def test_every_benchmark_gets_its_own_defaults_through_the_runner():
    args = runner.parse_args([])
    for name, module in runner.BENCHMARKS.items():
        own = argparse.ArgumentParser(add_help=False)
        module.add_arguments(own)
        expected = {a.dest: a.default for a in own._actions if a.help != argparse.SUPPRESS}
        options = vars(runner.options_for(args, name))
        assert options == expected, name
        assert callable(module.run)


def test_runner_options_override_one_benchmark():
    args = runner.parse_args(["--ingest-events", "3000", "--ingest-ledger-rows", "0"])
    options = runner.options_for(args, "ingest")
    assert options.events == 3000
    assert options.ledger_rows == 0
    assert runner.options_for(args, "reporting").events != 3000


def test_ledger_rows_is_the_ingest_scale_stages_size():
    assert runner.options_for(runner.parse_args([]), "ingest").ledger_rows == 100_000_000
    args = runner.parse_args(["--ledger-rows", "10000000"])
    assert runner.options_for(args, "ingest").ledger_rows == 10_000_000
    # The chart stage serves the same big ledger, so --ledger-rows sizes both.
    assert runner.options_for(args, "chart").rows == 10_000_000
    assert runner.options_for(runner.parse_args(["--ledger-rows", "0"]), "chart").rows == 0
    # It runs right after ingest (whose scale stage loads or reuses the ledger).
    order = list(runner.BENCHMARKS)
    assert order.index("chart") == order.index("ingest") + 1


def test_ledger_load_spreads_the_rows_over_the_months_and_names_its_database():
    from datetime import UTC, datetime

    from benchmarks import ledger_load

    start, end = datetime(2026, 9, 1, 12, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC)
    plan = ledger_load.months(start, end, 1_000_000)
    assert [m.month for m, _, _ in plan] == [9, 10, 11]
    assert sum(n for _, _, n in plan) == 1_000_000
    # 29.5 of 89.5 days in September, 31 in October, 29 in November.
    assert [round(n / 1000) for _, _, n in plan] == [330, 346, 324]
    assert ledger_load.database_name(100_000_000) == "bench_ingest_100m"
    assert ledger_load.database_name(1_500_000) == "bench_ingest_1500k"


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert common.percentile(values, 50) == 50
    assert common.percentile(values, 99) == 99
    assert common.percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        common.percentile([], 50)


def test_table_shows_ratio_target_and_whether_met():
    figures = [
        common.Figure(
            "a", "Throughput", 30_000, "/s", baseline=100_000, target=">= 25,000/s", met=True
        ),
        common.Figure("b", "Latency p99", 25.0, "ms", target="< 20 ms", met=False),
        common.Figure("c", "Memory", 100, "MB"),
    ]
    text = common.table(figures)
    lines = text.splitlines()
    assert lines[0].split("|")[0].strip() == "figure"
    assert "0.3" in lines[2] and "yes" in lines[2]
    assert "NO" in lines[3]
    assert lines[4].rstrip().endswith("-")


def test_missing_services_are_reported_and_exit_nonzero(capsys):
    code = runner.main(
        [
            "--database-url",
            "postgres://postgres@127.0.0.1:1/nothing_bench",
            "--redis-url",
            "redis://127.0.0.1:1/2",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "PostgreSQL is not reachable" in err
    assert "Redis is not reachable" in err


def test_refuses_a_database_that_is_not_a_benchmark_one():
    with pytest.raises(SystemExit):
        environment.recreate_database("postgres://postgres@127.0.0.1:1/test")


def test_the_database_of_database_url_is_never_used_unless_it_is_a_benchmark_one():
    url = "postgres://u:p@db.example:5433/test"
    assert environment.bench_database_url(url) == "postgres://u:p@db.example:5433/meterdesk_bench"
    assert environment.bench_database_url("postgres://h/x_bench") == "postgres://h/x_bench"


def test_drilldown_rows_compare_each_level_with_the_same_page_at_the_small_size():
    from benchmarks import drilldown_pages

    # big p95 of 1..100 ms = 95 ms; small p95 of 1..100 ms x 0.5 = 47.5 ms.
    big = [float(ms) for ms in range(1, 101)]
    samples = {}
    for kind in drilldown_pages.LEVELS:
        samples[(kind, "big")] = big
        samples[(kind, "small")] = [ms * (0.5 if kind == "events" else 1.0) for ms in big]
    figures = drilldown_pages.figures(samples, big=10_000_000, small=10_000)
    assert [f.name for f in figures] == [
        "dashboard.drilldown_days_p95_ms",
        "dashboard.drilldown_hours_p95_ms",
        "dashboard.drilldown_events_p95_ms",
        "dashboard.drilldown_events_later_p95_ms",
    ]
    # Every name sorts into the table through DISPLAY_ORDER.
    assert {f.name.split(".")[0] for f in figures} <= set(runner.DISPLAY_ORDER)
    by_name = {f.name: f for f in figures}
    days = by_name["dashboard.drilldown_days_p95_ms"]
    assert (days.value, days.baseline, days.ratio, days.met) == (95.0, 95.0, 1.0, True)
    events = by_name["dashboard.drilldown_events_p95_ms"]
    assert (events.value, events.baseline, events.ratio) == (95.0, 47.5, 2.0)  # 95 / 47.5
    assert events.met is False
    assert "10,000,000" in events.label and events.baseline_label == "at 10,000"


def test_the_busy_hour_is_inside_the_period_and_gets_a_burst_only_when_it_fits():
    from datetime import UTC, datetime

    from benchmarks import drilldown_pages

    start = datetime(2026, 11, 10, 4, 39, 29, tzinfo=UTC)
    assert drilldown_pages.busy_hour(start) == datetime(2026, 11, 20, 14, tzinfo=UTC)
    assert drilldown_pages.burst_for(10_000) == 250
    assert drilldown_pages.burst_for(2_499) == 0


# -- the entitlement benchmark's own parts (no services) -----------------------------------
def test_runner_forwards_the_entitlement_options():
    args = runner.parse_args(["--entitlements-rate", "500", "--entitlements-outage-seconds", "0"])
    options = runner.options_for(args, "entitlements")
    assert options.rate == 500.0
    assert options.outage_seconds == 0.0
    assert options.check_path == "/api/v1/entitlements/check"


SCALE_TIERS = [
    # The Scale plan of billing/catalog/demo.toml: (up_to, unit, flat) in cents.
    (1000, Decimal(5), Decimal(1000)),
    (10000, Decimal(3), Decimal(500)),
    (None, Decimal(1), Decimal(0)),
]


def test_scale_tiers_are_read_from_the_catalog():
    assert entitlement_accounts.scale_tiers() == SCALE_TIERS


def test_graduated_amount_by_hand():
    amount = entitlement_accounts.graduated_amount
    assert amount(SCALE_TIERS, 300) == 2_500  # 1,000 flat + 300 x 5
    assert amount(SCALE_TIERS, 1_000) == 6_000  # 1,000 + 1,000 x 5
    assert amount(SCALE_TIERS, 1_001) == 6_503  # 6,000 + 500 flat + 1 x 3
    assert amount(SCALE_TIERS, 1_100) == 6_800  # 6,000 + 500 + 100 x 3
    assert amount(SCALE_TIERS, 10_001) == 33_501  # 6,000 + 500 + 9,000 x 3 + 1 x 1


def test_expected_answers_of_the_profiles():
    def answer(used, quantity, units_limit, spend_limit):
        return entitlement_accounts.expected_answer(
            used=used,
            quantity=quantity,
            units_limit=units_limit,
            spend_limit=spend_limit,
            tiers=SCALE_TIERS,
        )

    # Near the units cap: 1,000 - 990 = 10 left; 10 fit, 50 do not.
    assert answer(990, 10, 1_000, 100_000) == {"allowed": True, "remaining": 10, "reason": "ok"}
    assert answer(990, 50, 1_000, 100_000)["allowed"] is False
    # At the cap: nothing left.
    assert answer(1_200, 1, 1_200, 100_000) == {
        "allowed": False,
        "remaining": 0,
        "reason": "cap_reached",
    }
    # Near the spend cap: 6,800 spent of 6,900; 33 more cost 99 (6,899), 34 cost 102.
    assert answer(1_100, 10, 100_000, 6_900) == {"allowed": True, "remaining": 33, "reason": "ok"}
    assert answer(1_100, 50, 100_000, 6_900)["reason"] == "cap_reached"


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = json.dumps({"allowed": self.path != "/wrong"}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        if self.path == "/close":
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def tiny_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_open_loop_sends_every_request_at_the_rate_and_checks_answers(tiny_server):
    paths = ["/ok", "/wrong", "/close", "/ok"]
    samples = open_loop.run(
        port=tiny_server,
        requests=[open_loop.http_get(p, port=tiny_server) for p in paths],
        expected=[{"allowed": True}] * 4,
        rate=200,
        seconds=0.5,
        connections=4,
        processes=2,
    )
    summary = samples.summary()
    assert summary["requests"] == 100  # 200/s x 0.5 s, each exactly once
    assert sorted(round(s * 200) for s in samples.scheduled) == list(range(100))
    assert summary["errors"] == 0  # "Connection: close" answers reconnect
    assert summary["mismatches"] == 25  # every 4th request is /wrong
    assert samples.examples[0]["body"] == '{"allowed": false}'
    assert 0 < summary["p50_ms"] < 1000


def test_open_loop_latency_counts_from_the_scheduled_time():
    out = open_loop.Samples(t0=0.0, rate=10)
    for k, (latency, status) in enumerate([(2.0, 200), (3.0, 200), (50.0, 0), (4.0, 200)]):
        out.scheduled.append(k / 10)
        out.latency_ms.append(latency)
        out.send_lag_ms.append(0.0)
        out.status.append(status)
        out.mismatch.append(0)
    s = out.summary()
    assert (s["ok"], s["errors"], s["max_ms"]) == (3, 1, 4.0)
    assert out.summary(start=0.15)["requests"] == 2  # scheduled at 0.2 and 0.3


def test_parse_waits_for_the_whole_answer():
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    assert open_loop._parse(head + b"ab") is None
    assert open_loop._parse(head + b"abcdeHTTP") == (200, b"abcde", b"HTTP", False)
    with pytest.raises(ValueError):
        open_loop._parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")


def test_pyspy_summary_of_collapsed_stacks(tmp_path):
    raw = tmp_path / "raw.txt"
    raw.write_text(
        'process 1:"gunicorn";thread (0x1);run (g.py:1);__call__ (django/core/handlers/wsgi.py:9)'
        ";view (v.py:3);execute (db.py:7) 30\n"
        'process 1:"gunicorn";thread (0x1);run (g.py:1);__call__ (django/core/handlers/wsgi.py:9)'
        ";view (v.py:4) 10\n"
        'process 1:"gunicorn";thread (0x2);run (g.py:1);select (selectors.py:5) 60\n'
    )
    everything = pyspy_profile.summary(raw)
    assert everything["samples"] == 100
    assert ("run (g.py)", 100.0) in everything["inclusive"]
    requests = pyspy_profile.summary(raw, within="django/core/handlers/wsgi.py")
    assert requests["samples"] == 40
    assert requests["self"][0] == ("execute (db.py)", 75.0)  # 30 of 40
    assert ("view (v.py)", 100.0) in requests["inclusive"]  # lines 3 and 4: one function


def _segment(p99, requests=100, errors=0, mismatches=0, rate=2000.0):
    return {
        "requests": requests,
        "ok": requests - errors,
        "errors": errors,
        "mismatches": mismatches,
        "p50_ms": p99 / 2,
        "p99_ms": p99,
        "max_ms": p99 * 2,
        "throughput": rate,
        "server_cpu_us": 500.0,
    }


def test_entitlement_figures_meet_the_target_only_at_the_rate_without_errors():
    args = runner.options_for(runner.parse_args([]), "entitlements")
    validation = {"mismatches": 0}
    fast = {"check": _segment(4.0), "trivial": _segment(2.0)}
    figures = entitlement_figures.figures(args, fast, validation, None)
    p99 = figures[0]
    assert (p99.name, p99.value, p99.baseline, p99.ratio, p99.met) == (
        "entitlements.check_p99_ms",
        4.0,
        2.0,
        2.0,
        True,
    )
    behind = {"check": _segment(4.0, rate=1500.0), "trivial": _segment(2.0)}
    assert entitlement_figures.figures(args, behind, validation, None)[0].met is False
    failing = {"check": _segment(4.0, errors=1), "trivial": _segment(2.0)}
    figures = {f.name: f for f in entitlement_figures.figures(args, failing, validation, None)}
    assert figures["entitlements.check_p99_ms"].met is False
    assert figures["entitlements.mismatches"].value == 1
    assert figures["entitlements.mismatches"].met is False


def test_entitlement_outage_figures_count_errors_and_wrong_answers():
    args = runner.options_for(runner.parse_args([]), "entitlements")
    results = {"check": _segment(4.0), "trivial": _segment(2.0)}
    outage = {
        "mode": "stop",
        "rate": 2000.0,
        "validation": {"mismatches": 0},
        "segments": {
            "up": _segment(3.0),
            "down": _segment(30.0, errors=2),
            "back": _segment(8.0, mismatches=1),
            "all": _segment(30.0, requests=300, errors=2, mismatches=1),
        },
    }
    figures = {
        f.name: f for f in entitlement_figures.figures(args, results, {"mismatches": 0}, outage)
    }
    assert figures["entitlements.outage_p99_ms"].value == 30.0
    assert figures["entitlements.outage_p99_ms"].baseline == 3.0
    assert figures["entitlements.outage_back_p99_ms"].value == 8.0
    errors = figures["entitlements.outage_errors"]
    assert (errors.value, errors.met) == (2, False)
    assert figures["entitlements.outage_mismatches"].value == 1


def test_batches_rotate_the_checks_and_expect_their_answers_in_order():
    checks = [
        {"customer": f"cus_{i}", "event_name": "transactions", "quantity": 1} for i in range(3)
    ]
    expected = [{"allowed": True}, {"allowed": False}, {"allowed": True}]
    requests, answers = entitlement_accounts.batches(
        checks, expected, 2, port=80, key="k", path="/api/v1/entitlements/check"
    )
    assert len(requests) == 3  # every check leads one batch
    head, body = requests[2].split(b"\r\n\r\n")
    assert head.startswith(b"POST /api/v1/entitlements/check HTTP/1.1\r\n")
    assert f"Content-Length: {len(body)}".encode() in head
    assert b"Authorization: Bearer k" in head
    assert [c["customer"] for c in json.loads(body)["checks"]] == ["cus_2", "cus_0"]
    assert answers[2] == {"results": [{"allowed": True}, {"allowed": True}]}


def test_an_idle_connection_closed_by_the_server_is_no_error():
    out = open_loop.Samples(t0=0.0, rate=10)
    loop = open_loop._Loop(out, ([b"GET / HTTP/1.1\r\n\r\n"], [None], 10, 1, 10, 1), [0], 1)
    slot = loop.slots[0]
    ours, theirs = socket.socketpair()
    slot.conn.sock = ours
    loop.selector.register(ours, selectors.EVENT_READ, slot)
    theirs.close()  # the server ends a keep-alive connection between requests
    loop._readable(slot, now=0.5)
    assert slot.conn.sock is None  # reconnects for the next request
    assert len(out.status) == 0  # and no request failed


def test_no_benchmark_option_is_overwritten_by_the_runners_own_sizes():
    # The runner records each benchmark's duration as sizes[name]["seconds"].
    args = runner.parse_args([])
    for name in runner.BENCHMARKS:
        assert "seconds" not in vars(runner.options_for(args, name)), name
