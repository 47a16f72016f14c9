"""Isolated model workers: a framed socket protocol, worker processes, per-model environments."""
