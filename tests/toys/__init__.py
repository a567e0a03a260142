"""A toy refinement method and a toy raw layout: each one file, registered by one line in a test."""
