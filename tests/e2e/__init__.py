"""Whole runs: a real browser, real processes (`sewamitra up`, workers), chaos and benchmarks."""
