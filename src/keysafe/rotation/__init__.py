"""Rotation of stored secrets against the systems that use them (see ``service.py``)."""
