"""Variation executors: asyncio in-process (default) and Ray (when a Ray address is configured)."""
