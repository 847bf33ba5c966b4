"""Fair shares of the buckets: pure arithmetic every replica does alike, no messages.

The live replicas, sorted by id, split `total` buckets as evenly as integers allow: the
first `total % n` take one more (256 over 3: 86, 85, 85). Each replica computes only its
own share from the registry it reads, takes free buckets up to it and hands back what is
beyond it; when all see the same live set, the shares add up to `total` exactly.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable


def fair_share(live: Iterable[str], me: str, total: int) -> int:
    """How many of `total` buckets replica `me` should hold among `live` (counted in)."""
    ids = sorted(set(live) | {me})
    base, extra = divmod(total, len(ids))
    return base + (1 if ids.index(me) < extra else 0)


def beyond_share(held: Collection[int], share: int) -> list[int]:
    """The buckets of `held` to hand back to get down to `share`: the highest ones."""
    return sorted(held)[max(share, 0) :]
