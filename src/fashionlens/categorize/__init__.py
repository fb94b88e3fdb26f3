"""Categorize: zero-shot, probes, trained heads and fine-tuning, with per-class evidence."""
