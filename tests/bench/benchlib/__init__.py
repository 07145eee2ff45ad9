"""Shared code of the benchmarks in tests/bench (compare.py, bench_pair.py)."""
