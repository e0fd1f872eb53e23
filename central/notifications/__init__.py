"""Guardians hear about their child (issue 16): an outbox of notifications, fed by domain events, sent over channels."""
