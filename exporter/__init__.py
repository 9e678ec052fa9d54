"""Per-node Prometheus exporter: VRRP state, VIP ownership, health check, MaxScale mode."""
