"""Helpers shared by the test suites (local services, clients)."""
