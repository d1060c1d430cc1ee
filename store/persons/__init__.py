"""Persons, groups and behaviour counts for real-time cohorts: the store behind event intake and the
flag-time read (``PersonStore``; Redis in ``store.persons.redis``, embedded SQLite in
``store.persons.sqlite``)."""

from store.errors import PersonLimitExceeded
from store.persons.model import Merge, PersonView, ReadRequest, Step, Writes
from store.persons.protocol import PersonStore, SeenPerson, StoreSettings

__all__ = [
    "Merge",
    "PersonLimitExceeded",
    "PersonStore",
    "PersonView",
    "ReadRequest",
    "SeenPerson",
    "Step",
    "StoreSettings",
    "Writes",
]
