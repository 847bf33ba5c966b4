"""Read queries of the stored history for the operator: the read API, the console and the CLI.

One module per family (`sites`, `measurements`, `schedule`, `events`, `deliveries`,
`alerts`), each with keyword-only functions taking the caller's Session and returning
frozen dataclasses — never ORM objects, so a caller may use them after the session has
gone. Lists come a page at a time (`paging`): an opaque cursor, a stable order with a
unique tie-breaker, and a limit capped at `MAX_LIMIT`. Bad input (a cursor from another
list or tampered with, a limit out of range, a window that ends before it starts) raises
`ReadError`, which names the parameter at fault. Nothing here writes or commits.
"""

from receiver.storage.reads.paging import DEFAULT_LIMIT, MAX_LIMIT, Page, ReadError, all_items

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "Page", "ReadError", "all_items"]
