"""Predict sales and sell-through of new products from photos and metadata, with paired statistics."""
