"""Where the heavy per-frame jobs run: this process (``engine: local``) or a Ray cluster (``engine: ray``)."""
