"""Benchmarks: the pipeline beside the raw broker floor, and reporting at scale."""
