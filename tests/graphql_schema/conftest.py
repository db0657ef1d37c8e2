"""Fixtures for the GraphQL tests live in tests/conftest.py (`demo`, `reader`)."""
