"""Eval suites: they measure quality against named thresholds and write a report (tests assert behaviour)."""
