"""``ttt-perception bench ...``: one subcommand per question, plus ``report`` for the generated docs."""

from __future__ import annotations


def add_bench_parser(subparsers) -> None:
    bench = subparsers.add_parser("bench", help="benchmarks: print a table, write JSON and a PNG under results/")
    kinds = bench.add_subparsers(dest="bench", required=True)
    from . import accuracy, correlation, endurance, gradual, latency, pooling, realtime, report, tune

    accuracy.add_parser(kinds)
    pooling.add_parser(kinds)
    gradual.add_parser(kinds)
    realtime.add_parser(kinds)
    correlation.add_parser(kinds)
    latency.add_parser(kinds)
    endurance.add_parser(kinds)
    tune.add_parser(kinds)
    report.add_parser(kinds)
