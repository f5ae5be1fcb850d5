"""Notifications out: Matrix, e-mail and webhook channels behind a persistent outbox."""
