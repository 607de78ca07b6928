"""The scheduler: per-manager jobs (plain functions) and the daemon that runs them."""
