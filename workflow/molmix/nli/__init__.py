"""Atomic-level cross-NLI evaluation (§3.3): decomposition, NLI scoring, baselines and the KL analysis."""
