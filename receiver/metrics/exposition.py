"""Prometheus text exposition (format 0.0.4) for the cached collectors' hand-rendered lines.

The site-state and schedule collectors render their sample lines once per change instead
of through prometheus_client on every scrape; these helpers produce exactly what
`prometheus_client.generate_latest` would (same escaping, same float spelling), so the two
parts of /metrics read as one exposition.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import cast

from prometheus_client.utils import floatToGoString

# Go's float spelling, as prometheus_client writes sample values (the library leaves it untyped).
go_float = cast(Callable[[float], str], floatToGoString)

# Set by render_metrics_parts(): the cached collectors then yield nothing inside generate_latest()
# and their cached text is appended instead. Per context, so a concurrent ordinary
# collect() (a test's get_sample_value, another exporter) still sees every family.
fast_render: contextvars.ContextVar[bool] = contextvars.ContextVar("fast_render", default=False)


@dataclass(frozen=True)
class Family:
    """A metric family's name (as exposed, with `_total` for counters), help, type, labels."""

    name: str
    help: str
    type: str = "gauge"
    labels: tuple[str, ...] = ("site_id",)

    @property
    def header(self) -> str:
        help_text = self.help.replace("\\", r"\\").replace("\n", r"\n")
        return f"# HELP {self.name} {help_text}\n# TYPE {self.name} {self.type}\n"


_NEEDS_ESCAPE = re.compile(r'[\\\n"]')  # what the text format escapes in a label value


def escape_label_value(value: str) -> str:
    """Escape as the text format requires; unencodable code points (lone surrogates from
    JSON) become '?' rather than failing the whole scrape."""
    if value.isascii() and _NEEDS_ESCAPE.search(value) is None:
        return value  # the common case (ids, most names), at a fraction of the cost
    value = value.encode("utf-8", "replace").decode("utf-8")
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def sample_line(name: str, labels: Sequence[str], values: Sequence[str], value: float) -> str:
    """One sample line, labels in sorted order as prometheus_client writes them."""
    if len(labels) == 1:  # most site series: `site_id` alone
        return f'{name}{{{labels[0]}="{escape_label_value(values[0])}"}} {go_float(value)}\n'
    pairs = sorted(zip(labels, values, strict=True))
    text = ",".join(f'{key}="{escape_label_value(val)}"' for key, val in pairs)
    return f"{name}{{{text}}} {go_float(value)}\n"


def family_text(family: Family, lines: Iterable[str]) -> str:
    """HELP and TYPE once, then the family's sample lines."""
    return family.header + "".join(lines)
