"""Persistence: tables, engines, migrations and the queries the service runs."""
