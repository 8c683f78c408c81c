"""Runnable example services."""
