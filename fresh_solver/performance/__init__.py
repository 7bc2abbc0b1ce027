"""Measuring solver speed honestly: time to target, paired comparisons, benchmarks."""
