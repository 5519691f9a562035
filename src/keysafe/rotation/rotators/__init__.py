"""Rotator plugins: one module per target system, registered by name in ``registry``."""
