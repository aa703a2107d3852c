"""Benchmarks of credit_tasks, run by `make bench`: each figure beside its baseline or floor.

`bench.run` starts a private redis-server and the simulator, runs `history`, `check_cost`
and `latency`, prints a table and writes `bench/results.json`. `common` holds what they share;
`breakdown` (run on its own) shows where a check's time goes.
"""
