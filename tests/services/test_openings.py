"""Opening hours as UTC openings: the IANA rules on daylight-saving days, joins across
midnight, closures, and a brute force in local time (hypothesis).

Transitions used (2026): Europe/Berlin 29 Mar (02:00 -> 03:00) and 25 Oct (03:00 ->
02:00); America/New_York 8 Mar and 1 Nov; Australia/Lord_Howe 5 Apr (02:00 -> 01:30) and
4 Oct (02:00 -> 02:30); Pacific/Chatham 5 Apr (03:45 -> 02:45) and 27 Sep (02:45 ->
03:45); Asia/Kathmandu (+05:45) has none.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.services import openings
from app.services.openings import ALWAYS_OPEN, Closure, Interval, Span, Weekly

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
KATHMANDU = ZoneInfo("Asia/Kathmandu")
CHATHAM = ZoneInfo("Pacific/Chatham")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def every_day(*spans: tuple[str, str]) -> Weekly:
    day = [{"opens": o, "closes": c} for o, c in spans]
    return openings.parse_weekly(dict.fromkeys(openings.DAY_NAMES, day))


def one_day(zone: ZoneInfo, day: date, weekly: Weekly, *closures: Closure) -> list[Interval]:
    return openings.openings(weekly, closures, zone, day, day)


def hours(interval: Interval) -> float:
    return (interval.end - interval.start) / timedelta(hours=1)


def _span(opens: str, closes: str) -> dict[str, str]:
    return {"opens": opens, "closes": closes}


# --- daylight-saving days


@pytest.mark.parametrize(
    ("zone", "day", "length"),
    [
        pytest.param(BERLIN, date(2026, 3, 29), 23, id="berlin-spring"),
        pytest.param(BERLIN, date(2026, 10, 25), 25, id="berlin-fall"),
        pytest.param(NEW_YORK, date(2026, 3, 8), 23, id="new-york-spring"),
        pytest.param(NEW_YORK, date(2026, 11, 1), 25, id="new-york-fall"),
        pytest.param(LORD_HOWE, date(2026, 10, 4), 23.5, id="lord-howe-spring"),
        pytest.param(LORD_HOWE, date(2026, 4, 5), 24.5, id="lord-howe-fall"),
        pytest.param(CHATHAM, date(2026, 9, 27), 23, id="chatham-spring"),
        pytest.param(CHATHAM, date(2026, 4, 5), 25, id="chatham-fall"),
        pytest.param(KATHMANDU, date(2026, 3, 29), 24, id="kathmandu"),
        pytest.param(BERLIN, date(2026, 6, 1), 24, id="berlin-summer"),
    ],
)
def test_a_day_open_around_the_clock_lasts_as_long_as_the_local_day(
    zone: ZoneInfo, day: date, length: float
) -> None:
    (opening,) = one_day(zone, day, every_day(("00:00", "24:00")))
    assert hours(opening) == length
    assert opening.start == datetime.combine(day, datetime.min.time(), zone)


def test_berlin_one_to_four_is_two_hours_in_spring_and_four_in_autumn() -> None:
    weekly = every_day(("01:00", "04:00"))
    assert one_day(BERLIN, date(2026, 3, 29), weekly) == [
        Interval(utc(2026, 3, 29, 0), utc(2026, 3, 29, 2))
    ]
    assert one_day(BERLIN, date(2026, 10, 25), weekly) == [
        Interval(utc(2026, 10, 24, 23), utc(2026, 10, 25, 3))
    ]


@pytest.mark.parametrize(
    ("zone", "day", "skipped", "first_instant_after"),
    [
        pytest.param(BERLIN, date(2026, 3, 29), "02:30", utc(2026, 3, 29, 1), id="berlin"),
        pytest.param(NEW_YORK, date(2026, 3, 8), "02:15", utc(2026, 3, 8, 7), id="new-york"),
        pytest.param(LORD_HOWE, date(2026, 10, 4), "02:15", utc(2026, 10, 3, 15, 30), id="lhi"),
        pytest.param(CHATHAM, date(2026, 9, 27), "03:00", utc(2026, 9, 26, 14), id="chatham"),
    ],
)
def test_a_skipped_opening_time_counts_from_the_first_instant_after_the_gap(
    zone: ZoneInfo, day: date, skipped: str, first_instant_after: datetime
) -> None:
    (opening,) = one_day(zone, day, every_day((skipped, "12:00")))
    assert opening.start == first_instant_after
    # An interval lying wholly inside the gap is no time at all.
    assert openings.local_instant(day, openings.parse_time(skipped, closing=False), zone) == (
        first_instant_after
    )


@pytest.mark.parametrize(
    ("zone", "day", "repeated", "first_occurrence"),
    [
        pytest.param(BERLIN, date(2026, 10, 25), "02:30", utc(2026, 10, 25, 0, 30), id="berlin"),
        pytest.param(NEW_YORK, date(2026, 11, 1), "01:30", utc(2026, 11, 1, 5, 30), id="nyc"),
        pytest.param(LORD_HOWE, date(2026, 4, 5), "01:45", utc(2026, 4, 4, 14, 45), id="lhi"),
        pytest.param(CHATHAM, date(2026, 4, 5), "03:00", utc(2026, 4, 4, 13, 15), id="chatham"),
    ],
)
def test_a_repeated_time_counts_from_its_first_occurrence(
    zone: ZoneInfo, day: date, repeated: str, first_occurrence: datetime
) -> None:
    weekly = every_day(("00:00", repeated), (repeated, "24:00"))
    closing, opening = openings.day_hours(weekly, [], zone, day).open
    # Two intervals meeting at a repeated time: the second starts where the first ends.
    assert closing.end == opening.start == first_occurrence
    (joined,) = openings.join([closing, opening])
    assert joined == Interval(closing.start, opening.end)


def test_an_interval_inside_a_spring_forward_gap_is_dropped() -> None:
    assert one_day(BERLIN, date(2026, 3, 29), every_day(("02:10", "02:50"))) == []


def test_kathmandu_opens_at_a_quarter_past_in_utc() -> None:
    assert one_day(KATHMANDU, date(2026, 6, 1), every_day(("08:00", "20:00"))) == [
        Interval(utc(2026, 6, 1, 2, 15), utc(2026, 6, 1, 14, 15))
    ]


# --- joins, closures, questions


def test_a_night_opening_across_midnight_is_one_opening_even_across_fall_back() -> None:
    weekly = openings.parse_weekly(
        {
            "saturday": [{"opens": "20:00", "closes": "24:00"}],
            "sunday": [{"opens": "00:00", "closes": "04:00"}],
        }
    )
    saturday, sunday = date(2026, 10, 24), date(2026, 10, 25)
    assert openings.openings(weekly, [], BERLIN, saturday, sunday) == [
        Interval(utc(2026, 10, 24, 18), utc(2026, 10, 25, 3))  # 9 hours of wall-clock 8
    ]
    night = Interval(utc(2026, 10, 24, 21), utc(2026, 10, 25, 2))
    assert openings.covering_opening(weekly, [], BERLIN, *night) is not None
    assert openings.next_change(weekly, [], BERLIN, night.start) == utc(2026, 10, 25, 3)


def test_a_closure_on_a_dst_day_replaces_the_template_with_its_own_hours() -> None:
    spring = date(2026, 3, 29)
    special = Closure(spring, spring, "Easter", openings.parse_spans([_span("01:00", "04:00")]))
    assert one_day(BERLIN, spring, ALWAYS_OPEN, special) == [
        Interval(utc(2026, 3, 29, 0), utc(2026, 3, 29, 2))
    ]
    day = openings.day_hours(ALWAYS_OPEN, [special], BERLIN, spring)
    assert day.closure == special


def test_a_closed_day_splits_the_week_and_is_the_next_change() -> None:
    spring = date(2026, 3, 29)
    closed = Closure(spring, spring, "Inventory")
    closures = [closed]
    saturday_noon = utc(2026, 3, 28, 11)
    assert openings.openings(ALWAYS_OPEN, closures, BERLIN, spring, spring) == []
    assert openings.is_open(ALWAYS_OPEN, closures, BERLIN, saturday_noon)
    assert not openings.is_open(ALWAYS_OPEN, closures, BERLIN, utc(2026, 3, 29, 12))
    # Closes at Berlin midnight (23:00 UTC), reopens at the next midnight (22:00 UTC, CEST).
    assert openings.next_change(ALWAYS_OPEN, closures, BERLIN, saturday_noon) == (
        utc(2026, 3, 28, 23)
    )
    assert openings.next_change(ALWAYS_OPEN, closures, BERLIN, utc(2026, 3, 29, 12)) == (
        utc(2026, 3, 29, 22)
    )
    assert (
        openings.covering_opening(ALWAYS_OPEN, closures, BERLIN, saturday_noon, utc(2026, 3, 29, 1))
        is None
    )


def test_open_around_the_clock_with_no_closure_ahead_never_changes() -> None:
    assert openings.next_change(ALWAYS_OPEN, [], BERLIN, utc(2026, 12, 1, 9)) is None
    past = Closure(date(2026, 1, 1), date(2026, 1, 1), "New Year")
    assert openings.next_change(ALWAYS_OPEN, [past], BERLIN, utc(2026, 12, 1, 9)) is None


def test_a_closure_months_ahead_is_the_next_change() -> None:
    christmas = Closure(date(2027, 12, 24), date(2027, 12, 26), "Christmas")
    assert openings.next_change(ALWAYS_OPEN, [christmas], BERLIN, utc(2026, 12, 1, 9)) == (
        utc(2027, 12, 23, 23)
    )


def test_weekday_hours_change_next_on_monday_morning_after_a_weekend() -> None:
    day = [_span("08:00", "22:00")]
    weekly = openings.parse_weekly(dict.fromkeys(openings.DAY_NAMES[:5], day))
    saturday = utc(2026, 12, 5, 12)
    assert not openings.is_open(weekly, [], BERLIN, saturday)
    assert openings.next_change(weekly, [], BERLIN, saturday) == utc(2026, 12, 7, 7)
    monday = (utc(2026, 12, 7, 7), utc(2026, 12, 7, 21))
    assert openings.covering_opening(weekly, [], BERLIN, *monday) == Interval(*monday)
    # Ending exactly at closing fits; a minute later does not.
    late = (utc(2026, 12, 7, 20), utc(2026, 12, 7, 21, 1))
    assert openings.covering_opening(weekly, [], BERLIN, *late) is None
    assert not openings.is_open(weekly, [], BERLIN, monday[1])  # [opens, closes)


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ({"monday": [{"opens": "24:00", "closes": "24:00"}]}, "not a time of day"),
        ({"monday": [{"opens": "10:00", "closes": "09:00"}]}, "opens must be before closes"),
        (
            {"monday": [_span("08:00", "12:00"), _span("11:00", "13:00")]},
            "sorted and must not overlap",
        ),
        ({"monday": [{"opens": "8:00", "closes": "12:00"}]}, "HH:MM"),
        ({"monday": [{"opens": "08:60", "closes": "12:00"}]}, "not a time of day"),
        ({"monday": [{"opens": "08:00"}]}, "opens, closes"),
        ({"funday": []}, "unknown day"),
        ({"monday": "08:00-12:00"}, "a list of intervals"),
    ],
)
def test_a_malformed_template_is_refused(bad: dict[str, object], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        openings.parse_weekly(bad)


def test_a_template_reads_back_as_written_with_missing_days_closed() -> None:
    weekly = openings.parse_weekly({"monday": [_span("08:00", "12:00"), _span("12:00", "24:00")]})
    written = openings.weekly_json(weekly)
    assert written["monday"] == [_span("08:00", "12:00"), _span("12:00", "24:00")]
    assert written["sunday"] == []
    assert openings.parse_weekly(written) == weekly


# --- brute force in local time

# Each zone's days of interest, with the instant its clocks change (or a night's).
ZONES = {
    "UTC": [(date(2026, 6, 1), utc(2026, 6, 1, 2))],
    "Europe/Berlin": [
        (date(2026, 3, 29), utc(2026, 3, 29, 1)),
        (date(2026, 10, 25), utc(2026, 10, 25, 1)),
    ],
    "America/New_York": [
        (date(2026, 3, 8), utc(2026, 3, 8, 7)),
        (date(2026, 11, 1), utc(2026, 11, 1, 6)),
    ],
    "Australia/Lord_Howe": [
        (date(2026, 4, 5), utc(2026, 4, 4, 15)),
        (date(2026, 10, 4), utc(2026, 10, 3, 15, 30)),
    ],
    "Asia/Kathmandu": [(date(2026, 6, 1), utc(2026, 5, 31, 20, 15))],
    "Pacific/Chatham": [
        (date(2026, 4, 5), utc(2026, 4, 4, 14)),
        (date(2026, 9, 27), utc(2026, 9, 26, 14)),
    ],
}
GRID = list(range(0, openings.MINUTES_PER_DAY + 1, 15))
NIGHT = list(range(60, 4 * 60, 15))  # where the clocks change: skipped and repeated times


@st.composite
def spans(draw: st.DrawFn, night: bool = False) -> tuple[Span, ...]:
    point = (
        st.sampled_from(NIGHT)
        if night
        else st.one_of(st.sampled_from(NIGHT), st.sampled_from(GRID))
    )
    points = sorted(draw(st.sets(point, min_size=1, max_size=4)))
    return tuple(Span(points[i], points[i + 1]) for i in range(0, len(points) - 1, 2))


@dataclass(frozen=True)
class Case:
    zone: ZoneInfo
    weekly: Weekly
    closures: list[Closure]
    change: datetime
    start: datetime
    end: datetime


@st.composite
def cases(draw: st.DrawFn) -> Case:
    name = draw(st.sampled_from(sorted(ZONES)))
    day, change = draw(st.sampled_from(ZONES[name]))
    # Often a day open until 24:00 and the next from 00:00, so that nights join.
    weekly = tuple(draw(st.one_of(spans(), st.just(ALWAYS_OPEN[0]))) for _ in range(7))
    # The day itself always gets an interesting template.
    weekly = tuple(
        draw(spans(night=True)) if d == day.weekday() else t for d, t in enumerate(weekly)
    )
    closures: list[Closure] = []
    for first in sorted(draw(st.sets(st.integers(-2, 2), max_size=1)), reverse=True):
        closed = day + timedelta(days=first)
        special = draw(st.one_of(st.none(), spans()))
        if not any(c.covers(closed) for c in closures):
            closures.append(Closure(closed, closed, "closed", special))
    # Mostly around the change (where skipped and repeated times are), else a day around.
    offset = draw(st.one_of(st.integers(-3 * 60, 3 * 60), st.integers(-30 * 60, 30 * 60)))
    length = draw(st.one_of(st.integers(0, 4 * 60), st.integers(0, 30 * 60)))
    start = change + timedelta(minutes=offset - offset % 5)
    end = start + timedelta(minutes=length - length % 5)
    return Case(ZoneInfo(name), weekly, closures, change, start, end)


def brute_open(
    weekly: Weekly, closures: list[Closure], zone: ZoneInfo, first: datetime, last: datetime
) -> list[bool]:
    """Open or not at each minute of [first, last], read off the local clock: the wall
    time reached by then (the highest shown so far, so a repeated hour is not lived twice
    and a skipped time is reached right after the gap) lies in an interval of its date."""
    answers = []
    reached = (first - timedelta(hours=4)).astimezone(zone).replace(tzinfo=None)
    at = first - timedelta(hours=3)  # long enough for the clock to have reached its time
    while at <= last:
        reached = max(reached, at.astimezone(zone).replace(tzinfo=None))
        if at >= first:
            closure = next((c for c in closures if c.covers(reached.date())), None)
            day = weekly[reached.weekday()] if closure is None else (closure.open or ())
            minute = reached.hour * 60 + reached.minute
            answers.append(any(s.opens <= minute < s.closes for s in day))
        at += timedelta(minutes=1)
    return answers


@settings(max_examples=150, deadline=None, database=None)
@given(case=cases())
def test_bookable_agrees_with_a_minute_by_minute_check_in_local_time(case: Case) -> None:
    zone, weekly, closures, start, end = case.zone, case.weekly, case.closures, case.start, case.end
    night = case.change - timedelta(hours=3), case.change + timedelta(hours=3)
    expected = brute_open(weekly, closures, zone, *night)
    for step in range(0, len(expected), 5):  # every 5 minutes of the night
        at = night[0] + timedelta(minutes=step)
        assert openings.is_open(weekly, closures, zone, at) == expected[step], at
    if start == end:
        return
    bookable = all(brute_open(weekly, closures, zone, start, end - timedelta(minutes=1)))
    assert (openings.covering_opening(weekly, closures, zone, start, end) is not None) == bookable


@pytest.mark.parametrize(
    ("weekly", "covered"),
    [(ALWAYS_OPEN, True), (tuple((Span(8 * 60, 22 * 60),) for _ in range(7)), False)],
)
def test_a_centuries_long_interval_is_judged_without_walking_every_day(
    monkeypatch: pytest.MonkeyPatch, weekly: Weekly, covered: bool
) -> None:
    # A query for availability until the year 4684 once took seconds (one day at a time).
    days_looked_at = 0
    day_hours = openings.day_hours

    def counted(*args: object) -> openings.Day:
        nonlocal days_looked_at
        days_looked_at += 1
        return day_hours(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(openings, "day_hours", counted)
    start, end = utc(2026, 12, 1, 10), datetime(4684, 1, 1, tzinfo=UTC)
    found = openings.covering_opening(weekly, (), BERLIN, start, end)
    assert (found is not None) is covered
    assert days_looked_at < 100
