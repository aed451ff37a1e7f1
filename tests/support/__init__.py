"""Helpers and fixtures shared by the tests (the fixtures are registered in tests/conftest.py)."""
