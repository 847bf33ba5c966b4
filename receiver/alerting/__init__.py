"""Built-in alerting: rules over a fleet snapshot, an Alertmanager-like engine, Apprise delivery.

`rules` decides which alerts hold; `engine` turns them into firing/resolved state and,
under grouping, repeat and silences, into notifications written to the durable outbox;
`outbox` delivers them through `notifier` (Apprise), retrying until each target accepts.
"""
