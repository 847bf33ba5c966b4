"""How the read commands (`sites`, `alerts list`, `report`) print: an aligned table, JSON or CSV.

JSON objects and CSV rows are the read API's (receiver.web.read_rows), so a script can
switch between `cellect-monitor sites --format json` and `GET /api/v1/sites` freely.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from receiver.web.read_rows import CsvShape

T = TypeVar("T")
FORMATS = ("table", "json", "csv")


def print_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Columns padded to their widest cell, two spaces apart."""
    cells = [list(header), *([("-" if v is None else str(v)) for v in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        padded = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(padded).rstrip())


def print_json(items: Iterable[dict[str, Any]]) -> None:
    print(json.dumps(list(items), indent=2))


def print_csv(shape: CsvShape[T], items: Iterable[T]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(shape.header)
    writer.writerows(shape.row(item) for item in items)


def print_as(
    form: str,
    items: Sequence[T],
    *,
    json_of: Callable[[T], dict[str, Any]],
    csv_shape: CsvShape[T] | None,
    header: Sequence[str],
    row: Callable[[T], Sequence[object]],
    empty: str,
) -> None:
    """`items` in the chosen format (FORMATS); a table of nothing says `empty` instead."""
    if form == "json":
        print_json(json_of(item) for item in items)
    elif form == "csv" and csv_shape is not None:
        print_csv(csv_shape, items)
    elif items:
        print_table(header, (row(item) for item in items))
    else:
        print(empty)


def fixed(value: float | None, digits: int = 1) -> str | None:
    """A number with `digits` decimals (None stays None: printed as '-')."""
    return None if value is None else f"{value:.{digits}f}"
