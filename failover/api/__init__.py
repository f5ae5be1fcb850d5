"""The daemon's operations surface: HTTP API and operator auth, status page, Alertmanager webhook."""
