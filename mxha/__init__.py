"""maxscale-ha: keep exactly one MaxScale active behind a Keepalived virtual IP."""

__version__ = "0.1.0"
