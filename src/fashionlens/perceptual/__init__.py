"""Perceptual alignment on human "which looks more similar" triplets (2AFC)."""
