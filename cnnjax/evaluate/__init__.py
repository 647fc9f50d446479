"""Exact evaluation and metrics."""
