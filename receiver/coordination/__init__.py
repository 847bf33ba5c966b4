"""Replica coordination: several `cellect-monitor run` share one PostgreSQL, and only it.

PostgreSQL is the one coordinator (no consensus of our own, no broker): a row per
lease with its owner, an epoch and an expiry, renewed every few seconds (the River /
Oban pattern), and a row per live replica with a heartbeat. Sites hash into 256
buckets (`buckets`); each replica takes a fair share of them (`balance`), renews what
it holds and hands back what it no longer should (`leases`, `coordinator`). Every
write made for a bucket checks the lease's epoch (`leases.fence`): a paused owner that
lost its lease cannot overwrite its successor's work. `NOTIFY cellect_leases` makes a
graceful hand-over take under a second (`listener`); a crashed replica's leases are
taken when they expire. `guards` refuses what cannot work: a second live replica on
SQLite, or code and database at different schema revisions. Design: docs/replicas.md.

Every time here is the database's clock (`dbclock`), never the monitor's Clock.
"""
