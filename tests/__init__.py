"""Tests for opush; a package so that tests.support and tests.doubles import cleanly."""
