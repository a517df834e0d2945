"""Benchmark scripts (not part of the installed package); timing helpers in benchmarks.common."""
