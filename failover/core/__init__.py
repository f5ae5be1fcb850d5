"""The bottom layer: errors, retries, secrets, guarded tasks, one HTTP client, loopback serving and
the Kubernetes vocabulary. Everything else may import it; it imports nothing of the project."""
