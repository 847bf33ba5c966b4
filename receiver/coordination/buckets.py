"""Which bucket a site belongs to: a stable hash of its id, the same in every process.

Python's `hash()` is salted per process (PYTHONHASHSEED) and may change between versions,
so replicas would disagree about who polls a site. BLAKE2b of the id's decimal text is
the same everywhere, forever, and spreads consecutive ids evenly.
"""

from __future__ import annotations

import hashlib

# Fixed: changing it would move every site to another bucket (a migration of its own).
BUCKETS = 256
POLL = "poll"  # the lease kind of site buckets


def bucket_of(site_id: int, buckets: int = BUCKETS) -> int:
    """The bucket (0 ≤ b < `buckets`) of the site `site_id`."""
    digest = hashlib.blake2b(str(int(site_id)).encode("ascii"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % buckets
