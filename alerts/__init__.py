"""Prometheus alert and recording rules for a MaxScale pair, generated from one source."""
