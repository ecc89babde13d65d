"""Shared test assertions and helpers for tfdgm (used by tests/, importable by users)."""
