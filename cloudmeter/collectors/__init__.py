"""Collectors: one module per source, the base protocol, the registry and the simulator."""
