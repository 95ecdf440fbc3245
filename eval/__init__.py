"""Benchmarks (`hotline eval ...`), each printing machine-readable JSON."""
