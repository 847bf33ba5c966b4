"""Property tests of schedule and query validation: valid schedules pass, every single
mutation is reported with its code, and no input makes the validators raise."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from receiver.cellect.enums import Symbol
from receiver.cellect.timestamps import format_timestamp
from receiver.cellect.validation import (
    ScheduleValidation,
    SiteRatings,
    validate_schedule,
    validate_time_series_query,
)

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
Body = dict[str, Any]

nows = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
).map(lambda moment: moment.replace(microsecond=0))
ratings = st.builds(
    SiteRatings,
    rated_charge_kw=st.floats(min_value=1, max_value=5000),
    rated_discharge_kw=st.floats(min_value=1, max_value=5000),
)


def _ts(moment: datetime) -> str:
    return format_timestamp(moment)


@st.composite
def valid_cases(draw: st.DrawFn) -> tuple[Body, SiteRatings, datetime]:
    """A valid body: disjoint entries within [now + 5 min, now + 48 h], powers within ratings."""
    now, rating = draw(nows), draw(ratings)
    minutes = draw(st.lists(st.integers(5, 48 * 60), min_size=2, max_size=24, unique=True))
    points = sorted(minutes)[: len(minutes) // 2 * 2]
    powers = st.floats(-rating.rated_charge_kw, rating.rated_discharge_kw, allow_nan=False)
    data = [
        {
            "startDate": _ts(now + timedelta(minutes=start)),
            "endDate": _ts(now + timedelta(minutes=end)),
            "essPowerAC": draw(powers | st.integers(0, int(rating.rated_discharge_kw))),
        }
        for start, end in zip(points[::2], points[1::2], strict=True)
    ]
    body: Body = {"data": draw(st.permutations(data))}
    if draw(st.booleans()):
        body["partnerAccountId"] = draw(st.integers(1, 10**6))
    return body, rating, now


def _codes(result: ScheduleValidation) -> set[int]:
    return {violation.code for violation in result.violations}


@given(valid_cases())
def test_valid_schedules_pass(case: tuple[Body, SiteRatings, datetime]) -> None:
    """A schedule that keeps every rule passes, its entries parsed and sorted by start."""
    body, rating, now = case
    result = validate_schedule(body, rating, now)
    assert result.ok, result.violations
    assert len(result.entries) == len(body["data"])
    starts = [entry.start_date for entry in result.entries]
    assert starts == sorted(starts)
    assert result.partner_account_id == body.get("partnerAccountId")


Mutation = Callable[[dict[str, Any], SiteRatings, datetime, st.DrawFn], None]


def _set(name: str, value: object) -> Mutation:
    def mutate(entry: dict[str, Any], rating: SiteRatings, now: datetime, draw: st.DrawFn) -> None:
        entry[name] = value

    return mutate


def _drop(name: str) -> Mutation:
    def mutate(entry: dict[str, Any], rating: SiteRatings, now: datetime, draw: st.DrawFn) -> None:
        del entry[name]

    return mutate


def _swap(entry: dict[str, Any], rating: SiteRatings, now: datetime, draw: st.DrawFn) -> None:
    entry["startDate"], entry["endDate"] = entry["endDate"], entry["startDate"]


def _empty_span(entry: dict[str, Any], rating: SiteRatings, now: datetime, draw: st.DrawFn) -> None:
    entry["endDate"] = entry["startDate"]


def _naive(name: str) -> Mutation:
    def mutate(entry: dict[str, Any], rating: SiteRatings, now: datetime, draw: st.DrawFn) -> None:
        entry[name] = entry[name].removesuffix("Z")

    return mutate


def _too_soon(entry: dict[str, Any], rating: SiteRatings, now: datetime, draw: st.DrawFn) -> None:
    seconds = draw(st.integers(-3 * 86400, 5 * 60 - 1))
    entry["startDate"] = _ts(now + timedelta(seconds=seconds))


def _beyond(entry: dict[str, Any], rating: SiteRatings, now: datetime, draw: st.DrawFn) -> None:
    seconds = draw(st.integers(1, 30 * 86400))
    entry["endDate"] = _ts(now + timedelta(hours=48, seconds=seconds))


def _charge(entry: dict[str, Any], rating: SiteRatings, now: datetime, draw: st.DrawFn) -> None:
    entry["essPowerAC"] = -rating.rated_charge_kw - draw(st.floats(0.01, 1e6))


def _discharge(entry: dict[str, Any], rating: SiteRatings, now: datetime, draw: st.DrawFn) -> None:
    entry["essPowerAC"] = rating.rated_discharge_kw + draw(st.floats(0.01, 1e6))


ENTRY_MUTATIONS: dict[str, tuple[Mutation, int]] = {
    "drop startDate": (_drop("startDate"), 30009),
    "drop endDate": (_drop("endDate"), 30011),
    "drop essPowerAC": (_drop("essPowerAC"), 30013),
    "null startDate": (_set("startDate", None), 30009),
    "blank endDate": (_set("endDate", "  "), 30011),
    "empty essPowerAC": (_set("essPowerAC", ""), 30013),
    "null essPowerAC": (_set("essPowerAC", None), 30013),
    "number startDate": (_set("startDate", 1717243200), 30010),
    "list endDate": (_set("endDate", ["2024-06-01T12:00:00Z"]), 30012),
    "garbage startDate": (_set("startDate", "tomorrow"), 30010),
    "string essPowerAC": (_set("essPowerAC", "5"), 30014),
    "bool essPowerAC": (_set("essPowerAC", True), 30014),
    "object essPowerAC": (_set("essPowerAC", {"kW": 5}), 30014),
    "NaN essPowerAC": (_set("essPowerAC", math.nan), 30014),
    "inf essPowerAC": (_set("essPowerAC", math.inf), 30014),
    "-inf essPowerAC": (_set("essPowerAC", -math.inf), 30014),
    "naive startDate": (_naive("startDate"), 30010),
    "naive endDate": (_naive("endDate"), 30012),
    "start after end": (_swap, 30103),
    "start equals end": (_empty_span, 30103),
    "too soon": (_too_soon, 30091),
    "beyond 48 h": (_beyond, 30092),
    "charge above rated": (_charge, 30113),
    "discharge above rated": (_discharge, 30114),
}


@settings(max_examples=300)
@given(valid_cases(), st.sampled_from(sorted(ENTRY_MUTATIONS)), st.data())
def test_each_entry_mutation_is_reported_with_its_code(
    case: tuple[Body, SiteRatings, datetime], name: str, data: st.DataObject
) -> None:
    """Breaking one rule in one entry of a valid schedule is reported with that rule's code."""
    body, rating, now = copy.deepcopy(case)
    mutate, code = ENTRY_MUTATIONS[name]
    index = data.draw(st.integers(0, len(body["data"]) - 1))
    mutate(body["data"][index], rating, now, data.draw)
    result = validate_schedule(body, rating, now)
    assert not result.ok
    assert result.entries == []
    assert code in _codes(result), (name, result.violations)
    assert any(v.field.startswith(f"data[{index}]") for v in result.violations if v.code == code)


@given(valid_cases(), st.data())
def test_overlap_is_reported(case: tuple[Body, SiteRatings, datetime], data: st.DataObject) -> None:
    """An entry repeated (or overlapping another) inside one post is 30088."""
    body, rating, now = copy.deepcopy(case)
    entry = data.draw(st.sampled_from(body["data"]))
    body["data"].append(dict(entry))
    result = validate_schedule(body, rating, now)
    assert _codes(result) == {30088}


BODY_MUTATIONS: dict[str, tuple[Callable[[Body], object], set[int]]] = {
    "partnerAccountId null": (lambda b: {**b, "partnerAccountId": None}, {30042}),
    "partnerAccountId blank": (lambda b: {**b, "partnerAccountId": " "}, {30042}),
    "partnerAccountId zero": (lambda b: {**b, "partnerAccountId": 0}, {30043}),
    "partnerAccountId negative": (lambda b: {**b, "partnerAccountId": -4}, {30043}),
    "partnerAccountId text": (lambda b: {**b, "partnerAccountId": "abc"}, {30043}),
    "partnerAccountId string number": (lambda b: {**b, "partnerAccountId": "7"}, {30043}),
    "partnerAccountId float": (lambda b: {**b, "partnerAccountId": 1.5}, {30043}),
    "partnerAccountId bool": (lambda b: {**b, "partnerAccountId": True}, {30043}),
    "no data": (lambda b: {k: v for k, v in b.items() if k != "data"}, {30009, 30011, 30013}),
    "empty data": (lambda b: {**b, "data": []}, {30009, 30011, 30013}),
    "data not a list": (lambda b: {**b, "data": b["data"][0]}, {30009, 30011, 30013}),
    "body a list": (lambda b: b["data"], {30009, 30011, 30013}),
    "body null": (lambda b: None, {30009, 30011, 30013}),
}


@given(valid_cases(), st.sampled_from(sorted(BODY_MUTATIONS)))
def test_each_body_mutation_is_reported_with_its_code(
    case: tuple[Body, SiteRatings, datetime], name: str
) -> None:
    """A bad partnerAccountId or a missing/empty `data` is reported with its codes."""
    body, rating, now = copy.deepcopy(case)
    mutate, codes = BODY_MUTATIONS[name]
    result = validate_schedule(mutate(body), rating, now)
    assert _codes(result) == codes, result.violations


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["2024-06-01T12:10:00Z", "2024-06-01T12:10:00", "", "  ", "NaN"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["data", "partnerAccountId", "startDate", "endDate", "essPowerAC", "x"])
            | st.text(max_size=8),
            children,
            max_size=5,
        )
    ),
    max_leaves=25,
)


@settings(max_examples=400)
@given(json_values | st.from_type(object) | st.builds(lambda d: {"data": d}, json_values), nows)
def test_no_input_makes_schedule_validation_raise(body: object, now: datetime) -> None:
    """Any value, JSON-shaped or not, yields a validation result, never an exception."""
    result = validate_schedule(body, SiteRatings(100.0, 100.0), now)
    assert isinstance(result, ScheduleValidation)
    assert result.ok == (not result.violations)


@given(
    st.sampled_from([Symbol.EX_ANTE, Symbol.EX_POST]),
    st.none() | st.text(max_size=40),
    st.none() | st.text(max_size=40),
    nows,
)
def test_no_query_makes_query_validation_raise(
    symbol: Symbol, start: str | None, end: str | None, now: datetime
) -> None:
    """Any startDate/endDate text yields a window or violations, never an exception."""
    window, violations = validate_time_series_query(symbol, start, end, now)
    assert (window is None) == bool(violations)


@given(nows, st.integers(0, 47 * 60), st.integers(1, 60))
def test_ex_ante_window_within_48_hours_passes(now: datetime, offset: int, span: int) -> None:
    """An ExAnte window inside the next 48 h is accepted as given."""
    start, end = now + timedelta(minutes=offset), now + timedelta(minutes=offset + span)
    window, violations = validate_time_series_query(Symbol.EX_ANTE, _ts(start), _ts(end), now)
    assert violations == []
    assert window is not None
    assert (window.start, window.end) == (start, end)


@given(nows, st.integers(1, 10**6), st.integers(1, 10**5))
def test_ex_post_window_must_be_past(now: datetime, ago: int, span: int) -> None:
    """An ExPost window in the past passes; one reaching past now is 30104."""
    start, end = now - timedelta(seconds=ago + span), now - timedelta(seconds=ago)
    assert validate_time_series_query(Symbol.EX_POST, _ts(start), _ts(end), now)[1] == []
    late = _ts(now + timedelta(seconds=span))
    _, violations = validate_time_series_query(Symbol.EX_POST, _ts(start), late, now)
    assert [v.code for v in violations] == [30104]


@given(nows, st.integers(1, 10**5))
def test_query_start_not_before_end_is_30089(now: datetime, back: int) -> None:
    """A query whose start is not before its end is 30089, for both symbols."""
    end = _ts(now - timedelta(seconds=back))
    for symbol in (Symbol.EX_ANTE, Symbol.EX_POST):
        _, violations = validate_time_series_query(symbol, _ts(now), end, now)
        assert [v.code for v in violations] == [30089]


def test_ex_ante_beyond_48_hours_and_in_the_past() -> None:
    """ExAnte ending beyond 48 h is 30092; starting well in the past is 30010."""
    far = _ts(NOW + timedelta(hours=49))
    _, violations = validate_time_series_query(Symbol.EX_ANTE, _ts(NOW), far, NOW)
    assert [v.code for v in violations] == [30092]
    past = _ts(NOW - timedelta(hours=1))
    _, violations = validate_time_series_query(Symbol.EX_ANTE, past, _ts(NOW), NOW)
    assert [v.code for v in violations] == [30010]


def test_missing_query_dates() -> None:
    """Missing query dates are 30009 and 30011."""
    _, violations = validate_time_series_query(Symbol.EX_POST, None, "", NOW)
    assert [v.code for v in violations] == [30009, 30011]
