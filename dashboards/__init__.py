"""Grafana dashboard of the pair."""
