"""Reports, figures and the run summary."""
