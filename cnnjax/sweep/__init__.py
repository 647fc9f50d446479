"""Hyperparameter sweeps: points, an in-process resumable runner, ranked tables and a members.json."""
