"""Persistence: the tables, the database handle and the migrations. Used only by the control plane."""

from halyard.store.database import Database

__all__ = ["Database"]
