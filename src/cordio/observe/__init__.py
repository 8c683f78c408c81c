"""Observability: logging, health and the admin endpoints."""
