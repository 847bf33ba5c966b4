"""Schedule-entry statuses: the generations of a slot (`rule`), applied in one path
(`apply`) through a writer for any database (`core`) or SQLite's own connection
(`sqlite`)."""

from receiver.storage.status.apply import apply_observations
from receiver.storage.status.model import Observation, Source, StatusChange
from receiver.storage.status.sqlite import writer_for

__all__ = ["Observation", "Source", "StatusChange", "apply_observations", "writer_for"]
