"""Evaluation: retrieval and classification metrics, statistics."""
