"""The errors of replica coordination.

CoordinationError
├── LeaseLost            a write's lease is no longer ours (taken over, released,
│                        expired): the write must be rolled back, not retried
└── ReplicaRefused       this replica must not start
    ├── SingleReplicaOnly   SQLite, and another replica is live in the database
    └── SchemaMismatch      the database's schema revision is not this code's
"""

from __future__ import annotations


class CoordinationError(Exception):
    """Base of the errors of receiver.coordination."""


class LeaseLost(CoordinationError):
    """The lease a write was made under is no longer held by its writer."""

    def __init__(self, kind: str, bucket: int, epoch: int, reason: str) -> None:
        super().__init__(f"lease {kind}/{bucket} (epoch {epoch}) is no longer ours: {reason}")
        self.kind, self.bucket, self.epoch, self.reason = kind, bucket, epoch, reason


class ReplicaRefused(CoordinationError):
    """This replica cannot start against this database; the message says why and what to do."""


class SingleReplicaOnly(ReplicaRefused):
    """On SQLite only one replica may run, and another one is live."""


class SchemaMismatch(ReplicaRefused):
    """The database's schema revision differs from the one this code was built for."""
