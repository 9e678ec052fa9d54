"""MaxScale REST emulator, network-namespace harness and the two-node lab."""
