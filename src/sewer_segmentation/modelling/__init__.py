"""Models, losses, metrics, training (Lightning), inference and evaluation."""
