"""Benchmarks: scripts that print measured ratios against a baseline run in the same process."""
