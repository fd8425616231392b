"""BIND zone generation from plain data (arrives with its own issue)."""
