"""Buckets of sites and fair shares: the same answers in every process, shares within one."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest

from receiver.coordination.balance import beyond_share, fair_share
from receiver.coordination.buckets import BUCKETS, bucket_of

# Pinned: a change here moves sites between replicas' buckets across an upgrade.
PINNED = {1: 118, 2: 108, 42: 122, 1001: 13, 123456: 190}


def test_bucket_of_is_pinned_and_spreads_sites_evenly() -> None:
    """`bucket_of` gives the pinned buckets (no Python hash: stable across versions) and
    spreads 25,600 consecutive site ids over all 256 buckets, none with twice its due."""
    assert {site: bucket_of(site) for site in PINNED} == PINNED
    counts = Counter(bucket_of(site) for site in range(1, 25_601))
    assert set(counts) == set(range(BUCKETS))
    assert max(counts.values()) < 2 * 100
    assert min(counts.values()) > 100 // 2


def test_bucket_of_is_the_same_in_another_process_with_another_hash_seed() -> None:
    """A process with a different PYTHONHASHSEED computes the same buckets."""
    code = "from receiver.coordination.buckets import bucket_of; print(bucket_of(42))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == str(PINNED[42]), out.stderr


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 10, 255, 256, 300])
def test_fair_shares_add_up_and_differ_by_at_most_one(count: int) -> None:
    """Whatever the number of live replicas, their shares of 256 buckets add up to 256
    and differ by at most one; the larger ones go to the lowest ids."""
    ids = [f"r-{n:03d}" for n in range(count)]
    shares = [fair_share(ids, me, BUCKETS) for me in ids]
    assert sum(shares) == BUCKETS
    assert max(shares) - min(shares) <= 1
    assert shares == sorted(shares, reverse=True)


def test_three_replicas_split_86_85_85_and_a_replica_counts_itself() -> None:
    """256 over three is 86/85/85; a replica not (yet) in the live list counts itself in."""
    assert [fair_share(["a", "b", "c"], me, 256) for me in "abc"] == [86, 85, 85]
    assert fair_share(["a", "b"], "c", 256) == 85


def test_beyond_share_hands_back_the_highest_buckets() -> None:
    """Down to its share, a replica hands back its highest buckets; none under its share."""
    assert beyond_share({9, 2, 5, 7}, 2) == [7, 9]
    assert beyond_share({1, 2}, 5) == []
