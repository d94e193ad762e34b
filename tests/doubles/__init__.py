"""Test doubles of services that cannot run here (obm-sync, obm-locator)."""
