"""Smoke tests of the benchmark harness: no timing, no services.

The benchmarks themselves need PostgreSQL, Redis, gunicorn and the emulator and take
minutes (``make bench``); running their core at a tiny size here would cost far more
than the suite's budget, so these tests cover what can break silently instead: the
options ``python -m benchmarks`` forwards to each benchmark, the table, percentiles, and
the clear exit when the services are missing.
"""

import argparse

import pytest

from benchmarks import __main__ as runner
from benchmarks import common, environment


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
    args = runner.parse_args(["--ingest-events", "3000", "--ingest-no-what-if"])
    options = runner.options_for(args, "ingest")
    assert options.events == 3000
    assert options.what_if is False
    assert runner.options_for(args, "reporting").events != 3000


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
