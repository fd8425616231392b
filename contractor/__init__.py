"""Contractor: provision infrastructure and be its single source of truth."""
