"""``ttt-perception bench ...``: one subcommand per question."""

from __future__ import annotations


def add_bench_parser(subparsers) -> None:
    bench = subparsers.add_parser("bench", help="benchmarks: print a table, write JSON and a PNG under results/")
    kinds = bench.add_subparsers(dest="bench", required=True)
    from . import accuracy

    accuracy.add_parser(kinds)
