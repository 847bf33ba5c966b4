"""Who runs and who holds what, through the real app on SQLite and PostgreSQL: `/readyz`
says what this replica holds, the console's Service page and `GET /api/v1/replicas` list
the live replicas with their leases.

Other replicas are made the way the coordination tests make them: rows registered with
`registry.register` and leases taken with `leases.acquire_free`, on the app's own
database; the app's own replica is the real one `create_app` started."""

from __future__ import annotations

import csv
import io
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from starlette.testclient import TestClient

from receiver.coordination import leases, registry
from receiver.coordination.buckets import BUCKETS, POLL
from receiver.coordination.guards import code_revision
from receiver.coordination.registry import ReplicaIdentity
from receiver.service import Monitor
from receiver.storage.engine import session_factory
from tests.support.console import sign_in, sign_out
from tests.support.operator_api import ADMIN_TOKEN, AUTH, api_client, api_settings
from tests.support.stack import WEBHOOK_SECRET

OTHER = ReplicaIdentity("r-0ther0000000", "replica-b.example", 4242, "9.9.9", code_revision())
ROW = re.compile(r'<tr class="replica-row( current)?" data-replica="([^"]+)"')


def _monitor(api: TestClient) -> Monitor:
    monitor: Monitor = api.app.state.monitor  # type: ignore[attr-defined]
    return monitor


def _postgres(api: TestClient) -> bool:
    return _monitor(api).database.dialect.name == "postgresql"


def _owners(api: TestClient, kind: str) -> dict[int, str]:
    with session_factory(_monitor(api).database)() as session:
        return leases.owners(session=session, kind=kind)


def _until(done: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(0.05)


def _beat(api: TestClient, *ids: str) -> None:
    with session_factory(_monitor(api).database)() as session:
        for replica_id in ids:
            assert registry.heartbeat(session=session, replica_id=replica_id)
        session.commit()


def _holds_all(api: TestClient) -> bool:
    mine = _monitor(api).replica
    assert mine is not None
    return len(mine.buckets) == BUCKETS


@contextmanager
def other_replica(api: TestClient) -> Iterator[str]:
    """A second live replica (OTHER) beside the app's own: once the app's replica has
    handed back the half beyond its share, OTHER takes those 128 buckets; on exit it
    hands them back and leaves, and the app's replica takes all 256 again."""
    monitor = _monitor(api)
    mine = monitor.replica
    assert mine is not None
    sessions = session_factory(monitor.database)
    with sessions() as session:
        registry.register(session=session, replica=OTHER)  # NOTIFY: the app's round runs
        session.commit()
    try:
        _until(lambda: len(_owners(api, POLL)) == BUCKETS // 2, "the app hands back half")
        with sessions() as session:
            taken = leases.acquire_free(
                session=session, owner=OTHER.id, kind=POLL, limit=BUCKETS, ttl_s=300
            )
            session.commit()
        assert len(taken) == BUCKETS // 2
        yield OTHER.id
    finally:
        with sessions() as session:
            leases.release(session=session, owner=OTHER.id)
            registry.deregister(session=session, replica_id=OTHER.id)
            session.commit()
        _until(lambda: _holds_all(api), "the app takes every bucket again")


def test_readyz_says_what_this_replica_holds(api: TestClient) -> None:
    """/readyz keeps its checks and adds `replica`: on SQLite the one monitor ("single"),
    on PostgreSQL, right after start-up, the only replica holding all 256 buckets and
    both singletons (the leader) — as the lease rows say too."""
    monitor = _monitor(api)
    answer = api.get("/readyz")
    body = answer.json()
    assert answer.status_code == 200, body
    assert body["status"] == "ready"
    assert {"database", "webhook_writer", "alerting", "pollers"} <= body.keys()
    if not _postgres(api):
        assert monitor.presence.identity is not None
        assert body["replica"] == {"id": monitor.presence.identity.id, "role": "single"}
        return
    assert monitor.replica is not None
    me = monitor.replica.id
    assert body["replica"] == {
        "id": me, "role": "leader", "buckets": BUCKETS, "portfolio": True, "alerts": True,
    }  # fmt: skip
    assert set(_owners(api, POLL).values()) == {me}
    assert len(_owners(api, POLL)) == BUCKETS
    assert _owners(api, "portfolio") == {0: me}
    assert _owners(api, "alerts") == {0: me}


def test_the_service_page_lists_the_replicas_and_what_each_holds(api: TestClient) -> None:
    """SQLite: one monitor, no table. PostgreSQL: both live replicas, 128 buckets each,
    the app's own marked as this one and leading both singletons, the other a member;
    its host and version escaped like any text from the database."""
    sign_out(api)
    sign_in(api)
    monitor = _monitor(api)
    if not _postgres(api):
        page = api.get("/service")
        assert page.status_code == 200
        assert "One monitor (SQLite)" in page.text
        assert 'class="replicas"' not in page.text
        assert 'id="service-replica"' in page.text
        return
    assert monitor.replica is not None
    me = monitor.replica.id
    with other_replica(api) as other:
        _beat(api, other)
        fragment = api.get("/service?fragment=live")
    assert fragment.status_code == 200
    html = fragment.text
    assert "<html" not in html
    assert ROW.findall(html) == sorted([(" current", me), ("", other)], key=lambda r: r[1])
    mine, theirs = _row_cells(html, me), _row_cells(html, other)
    assert mine == {"role": "leader", "buckets": "128", "portfolio": "yes", "alerts": "yes"}
    assert theirs == {"role": "member", "buckets": "128", "portfolio": "no", "alerts": "no"}
    assert "(this one)" in html.split(f'data-replica="{me}"', 1)[1].split("</tr>", 1)[0]
    for shown in ("<td>replica-b.example</td>", "<td>4242</td>", "<td>9.9.9</td>"):
        assert shown in html
    assert "all 256 buckets held" in html


def _row_cells(html: str, replica_id: str) -> dict[str, str]:
    row = html.split(f'data-replica="{replica_id}"', 1)[1].split("</tr>", 1)[0]
    return dict(re.findall(r'<td class="held-(role|buckets|portfolio|alerts)">([^<]*)</td>', row))


def test_the_replicas_api_needs_the_admin_token(api: TestClient) -> None:
    """Like the rest of /api/: 401 without the Bearer token."""
    sign_out(api)
    assert api.get("/api/v1/replicas").status_code == 401


def test_the_replicas_api_lists_the_live_replicas(api: TestClient) -> None:
    """JSON: the backend, this replica's id, and each live replica with what it holds —
    on SQLite the one monitor ("single", no leases); on PostgreSQL both replicas with
    128 buckets each and the singletons with the app's own. No secret in the answer."""
    monitor = _monitor(api)
    if not _postgres(api):
        assert monitor.presence.identity is not None
        me = monitor.presence.identity.id
        body = api.get("/api/v1/replicas", headers=AUTH).json()
        assert body["backend"] == "sqlite"
        assert body["current"] == me
        assert body["buckets_unheld"] is None
        assert body["next"] is None
        [only] = body["items"]
        assert (only["id"], only["current"], only["role"]) == (me, True, "single")
        assert (only["buckets"], only["portfolio"], only["alerts"]) == (None, None, None)
        return
    assert monitor.replica is not None
    me = monitor.replica.id
    with other_replica(api) as other:
        _beat(api, other)
        answer = api.get("/api/v1/replicas", headers=AUTH)
        _beat(api, other)
        exported = api.get("/api/v1/replicas?format=csv", headers=AUTH)
    assert answer.status_code == 200
    for secret in (ADMIN_TOKEN, WEBHOOK_SECRET):
        assert secret not in answer.text
    body = answer.json()
    assert (body["backend"], body["current"]) == ("postgresql", me)
    assert (body["buckets_total"], body["buckets_unheld"]) == (BUCKETS, 0)
    by_id = {item["id"]: item for item in body["items"]}
    assert [item["id"] for item in body["items"]] == sorted(by_id)
    assert by_id.keys() == {me, other}
    held = {i: (r["role"], r["buckets"], r["portfolio"], r["alerts"], r["current"])
            for i, r in by_id.items()}  # fmt: skip
    assert held == {
        me: ("leader", 128, True, True, True),
        other: ("member", 128, False, False, False),
    }
    theirs = by_id[other]
    assert (theirs["host"], theirs["pid"], theirs["version"]) == (
        "replica-b.example",
        4242,
        "9.9.9",
    )
    assert theirs["schema_revision"] == code_revision()
    assert theirs["started_at"].endswith("+00:00")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert {(r["id"], r["role"], r["buckets"]) for r in rows} == {
        (me, "leader", "128"), (other, "member", "128"),
    }  # fmt: skip


@pytest.mark.parametrize(
    ("query", "field"),
    [("cursor=abc", "cursor"), ("limit=5", "limit"), ("format=xml", "format"),
     ("role=leader", "role"), ("format=csv&format=json", "format")],
)  # fmt: skip
def test_bad_replicas_input_is_a_422_naming_the_field(
    api: TestClient, query: str, field: str
) -> None:
    """The list comes in one piece: paging, an unknown or repeated parameter is refused."""
    answer = api.get(f"/api/v1/replicas?{query}", headers=AUTH)
    assert answer.status_code == 422
    assert answer.json()["error"] == "invalid_parameter"
    assert answer.json()["field"] == field


@pytest.mark.postgres
def test_a_replica_that_holds_nothing_is_ready_and_says_so(api: TestClient) -> None:
    """A second monitor started beside 256 other live replicas (sorted before it) gets a
    fair share of no bucket and finds both singletons taken: its /readyz is 200, ready,
    and says "standby" with nothing held; the first keeps the singletons, "leader"."""
    if not _postgres(api):
        pytest.skip("leases exist on PostgreSQL only")
    first = _monitor(api)
    assert first.replica is not None
    crowd = [
        ReplicaIdentity(f"a-{n:03d}", "crowd.example", 10_000 + n, "9.9.9", code_revision())
        for n in range(BUCKETS)
    ]
    sessions = session_factory(first.database)
    with sessions() as session:
        for replica in crowd:
            registry.register(session=session, replica=replica)
        session.commit()
    stop = threading.Event()
    beating = threading.Thread(target=_keep_beating, args=(api, [r.id for r in crowd], stop))
    beating.start()
    try:
        _until(lambda: not first.replica or not first.replica.buckets, "the first hands back")
        second = api_client(api_settings(first.settings.database_url))
        with second:
            answer = second.get("/readyz")
            listed = second.get("/api/v1/replicas", headers=AUTH).json()
        body = answer.json()
        assert answer.status_code == 200, body
        assert body["status"] == "ready"
        assert body["replica"]["role"] == "standby"
        assert (body["replica"]["buckets"], body["replica"]["portfolio"]) == (0, False)
        assert body["replica"]["alerts"] is False
        assert api.get("/readyz").json()["replica"]["role"] == "leader"
        roles = {item["id"]: item["role"] for item in listed["items"]}
        assert roles[body["replica"]["id"]] == "standby"
        assert roles[first.replica.id] == "leader"
        assert listed["buckets_unheld"] == BUCKETS
    finally:
        stop.set()
        beating.join()
        with sessions() as session:
            for replica in crowd:
                registry.deregister(session=session, replica_id=replica.id)
            session.commit()
    _until(lambda: _holds_all(api), "the first takes every bucket again")


def _keep_beating(api: TestClient, ids: list[str], stop: threading.Event) -> None:
    """Keep `ids` live (a heartbeat every second) until `stop`."""
    while not stop.wait(1.0):
        _beat(api, *ids)
