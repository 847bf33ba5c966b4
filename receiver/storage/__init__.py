"""The history store: SQLModel tables, engine and sessions, repository functions, migrations.

Everything the service keeps lives here: sites and their measurements, availability
events, schedule entries with their status history, raw webhook deliveries, and the
alerting engine's state (alerts, silences, the notification outbox, generated secrets),
and the coordination of replicas (the live replicas, the leases they hold).
SQLite by default, PostgreSQL when `CELLECT_DATABASE_URL` points at one.
"""
