"""MLflow: registered pyfunc models and what the hooks log."""
