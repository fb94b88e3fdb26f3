"""Tasks: search, categorize, perceptual alignment, sales."""
