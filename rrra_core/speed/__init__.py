"""Speed benchmarks: measurement helpers and the bodies of ``scripts/bench_speed.py``."""
