"""genfab's own one-Pod Jobs of the data plane that need the control plane's pure parts (sequencing):
the run's per-sample records (`python -m genfab.jobs.records`)."""
