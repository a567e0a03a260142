"""Data: annotation parsing, duplicates, splits, decoded training samples, the synthetic generator."""
