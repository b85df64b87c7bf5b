"""Throw-away local servers for the demo, the tests and the benchmarks (loopback only)."""
