"""Tests that start the embedded broker or a ``journey worker`` process."""
