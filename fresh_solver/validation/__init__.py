"""Candidate parameter sets vs baselines on held-out instances, with paired statistics."""
