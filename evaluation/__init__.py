"""Offline evaluation: off-policy estimators, plain log files, and the evaluation and replay of a
candidate on the logged decisions."""
