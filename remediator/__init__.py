"""Alertmanager webhook remediator: re-reads live state and leaves exactly one MaxScale active."""
