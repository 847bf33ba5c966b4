"""Cursor pagination shared by every list: opaque cursors, capped limits, checked windows.

A cursor is the sort key of the last item of a page, with the name of the list it
belongs to, as URL-safe base64 of a small JSON array. It is opaque to callers (they
pass back what `next` said) but not secret: it holds nothing a caller could not read in
the page itself. Decoding checks the list's name and every value's type, so a cursor of
another list, a truncated one or one edited by hand is a `ReadError` naming "cursor",
never a database error. Keyset pagination (`WHERE key > cursor ORDER BY key`) keeps
each page an index range however deep the caller pages, and rows inserted meanwhile
never shift or repeat the items of later pages.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from receiver.cellect.timestamps import parse_timestamp

T = TypeVar("T")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# Cursors are short: a name and a few keys. Longer input is refused before decoding.
MAX_CURSOR_CHARS = 512
KeyValue = int | str | datetime


class ReadError(ValueError):
    """A read's input is wrong; `field` names the parameter (cursor, limit, from, …)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, and the cursor of the next page (None on the last one)."""

    items: list[T]
    next: str | None


def check_limit(limit: int) -> int:
    """`limit` itself when it is 1…MAX_LIMIT; a ReadError naming "limit" otherwise."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ReadError("limit", f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def check_window(start: datetime | None, end: datetime | None) -> None:
    """A window [start, end) must not end before it starts (either side may be open)."""
    if start is not None and end is not None and end < start:
        raise ReadError("to", "'to' must not be before 'from'")


def encode_cursor(kind: str, *key: KeyValue) -> str:
    """The cursor after an item whose sort key is `key`, in the list `kind`."""
    values = [v.isoformat() if isinstance(v, datetime) else v for v in key]
    raw = json.dumps([kind, *values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str, types: Sequence[type]) -> tuple[KeyValue, ...]:
    """The sort key a cursor of the list `kind` holds, each value of the type `types` says."""
    wrong = ReadError("cursor", "not a cursor of this list: pass back what 'next' said")
    if len(cursor) > MAX_CURSOR_CHARS:
        raise wrong
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        raise wrong from None
    if not isinstance(decoded, list) or len(decoded) != len(types) + 1 or decoded[0] != kind:
        raise wrong
    key: list[KeyValue] = []
    for value, expected in zip(decoded[1:], types, strict=True):
        if expected is datetime:
            moment = parse_timestamp(value)
            if moment is None:
                raise wrong
            key.append(moment)
        elif type(value) is expected and isinstance(value, int | str):
            key.append(value)  # `type(…) is`, not isinstance: True is no int here
        else:
            raise wrong
    return tuple(key)


def page_of(rows: Sequence[T], limit: int, cursor_of: Callable[[T], str]) -> Page[T]:
    """A page from up to `limit + 1` rows fetched: the extra row only says there is more."""
    items = list(rows[:limit])
    more = len(rows) > limit
    return Page(items, cursor_of(items[-1]) if more and items else None)


def all_items(fetch: Callable[[str | None], Page[T]], *, max_pages: int = 100_000) -> Iterator[T]:
    """Every item of a list, page after page (for exports and the CLI); at most `max_pages`."""
    cursor: str | None = None
    for _ in range(max_pages):
        page = fetch(cursor)
        yield from page.items
        if page.next is None:
            return
        cursor = page.next
