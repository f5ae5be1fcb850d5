"""Watching sites: probes produce signals, checks add hysteresis, a site gets a health and a readiness."""
