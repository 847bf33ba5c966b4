"""Pollers of the Cellect API: one per data set, on the shared `Poller` loop."""
