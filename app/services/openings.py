"""Opening hours: a branch's weekly template and closures, as concrete UTC openings.

Pure functions, no I/O: every rule about hours (booking, offers, availability, the
hours endpoint, ``open_now``) asks this module, so there is one reading of the IANA
rules (api.md, "Branches: ids, hours, closures, policy"):

- a wall-clock time is read with ``fold=0``: one that occurs twice counts from its
  first occurrence; one skipped by a spring-forward counts from the first instant
  after the gap;
- a day's intervals are taken one by one, so ``00:00``-``24:00`` is 23 h on a
  spring-forward day and 25 h on a fall-back day;
- openings that touch join (Monday ``20:00``-``24:00`` and Tuesday ``00:00``-``02:00``
  are one opening).

A closure replaces the template on its local dates: closed all day (``open`` None or
empty) or open on its own intervals. Closures of one branch never overlap (the
database excludes it); given overlapping ones, the first covering a date decides it.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MINUTES_PER_DAY = 24 * 60


class Span(NamedTuple):
    """Local wall-clock interval of one day, in minutes after midnight: [opens, closes)."""

    opens: int
    closes: int  # up to 1440 (24:00)


class Interval(NamedTuple):
    """A concrete half-open interval [start, end) of UTC instants."""

    start: datetime
    end: datetime


Weekly = tuple[tuple[Span, ...], ...]  # seven days, Monday first
ALWAYS_OPEN: Weekly = tuple((Span(0, MINUTES_PER_DAY),) for _ in DAY_NAMES)


@dataclass(frozen=True)
class Closure:
    """An exception on the local dates [date_from, date_to] (inclusive)."""

    date_from: date
    date_to: date
    reason: str
    open: tuple[Span, ...] | None = None  # None or empty: closed all day
    id: int | None = None

    def covers(self, day: date) -> bool:
        return self.date_from <= day <= self.date_to


@dataclass(frozen=True)
class Day:
    """One local date: its openings (not joined across midnight) and its closure."""

    date: date
    open: list[Interval]
    closure: Closure | None


# --- the template as JSON: {"monday": [{"opens": "08:00", "closes": "22:00"}], ...}


def parse_time(text: str, *, closing: bool) -> int:
    """``HH:MM`` as minutes after midnight; ``24:00`` only as a closing time."""
    if not isinstance(text, str) or len(text) != 5 or text[2] != ":":
        raise ValueError(f"{text!r} is not a time written HH:MM")
    hh, mm = text[:2], text[3:]
    if not (hh.isdigit() and mm.isdigit() and hh.isascii() and mm.isascii()):
        raise ValueError(f"{text!r} is not a time written HH:MM")
    minutes = int(hh) * 60 + int(mm)
    if int(mm) > 59 or minutes > MINUTES_PER_DAY or (minutes == MINUTES_PER_DAY and not closing):
        raise ValueError(f"{text!r} is not a time of day" + (" (24:00 only closes)" * closing))
    return minutes


def format_time(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_spans(items: Sequence[Mapping[str, Any]]) -> tuple[Span, ...]:
    """A day's ``[{opens, closes}]``: each opens before it closes, sorted, not overlapping."""
    spans: list[Span] = []
    for item in items:
        if not isinstance(item, Mapping) or set(item) != {"opens", "closes"}:
            raise ValueError("each interval is {opens, closes}")
        span = Span(
            parse_time(item["opens"], closing=False), parse_time(item["closes"], closing=True)
        )
        if span.opens >= span.closes:
            raise ValueError(f"{item['opens']}-{item['closes']}: opens must be before closes")
        if spans and span.opens < spans[-1].closes:
            raise ValueError("a day's intervals must be sorted and must not overlap")
        spans.append(span)
    return tuple(spans)


def parse_weekly(obj: Mapping[str, Any]) -> Weekly:
    """The weekly template from its JSON form; a missing day is closed."""
    if not isinstance(obj, Mapping):
        raise ValueError("hours are an object of weekdays")
    unknown = set(obj) - set(DAY_NAMES)
    if unknown:
        raise ValueError(f"unknown day(s): {', '.join(sorted(unknown))}")
    days: list[tuple[Span, ...]] = []
    for name in DAY_NAMES:
        items = obj.get(name) or []
        if not isinstance(items, list):
            raise ValueError(f"{name}: a list of intervals")
        days.append(parse_spans(items))
    return tuple(days)


def spans_json(spans: Iterable[Span]) -> list[dict[str, str]]:
    return [{"opens": format_time(s.opens), "closes": format_time(s.closes)} for s in spans]


def weekly_json(weekly: Weekly) -> dict[str, list[dict[str, str]]]:
    return {name: spans_json(spans) for name, spans in zip(DAY_NAMES, weekly, strict=True)}


# --- wall clock to instants


def local_instant(day: date, minute: int, zone: ZoneInfo) -> datetime:
    """The UTC instant of wall-clock ``minute`` (0..1440) on local ``day``.

    A repeated wall time is its first occurrence (fold=0); a skipped one is the first
    instant after the gap (zoneinfo would place it an offset-difference later)."""
    day, minute = (day + timedelta(days=1), 0) if minute == MINUTES_PER_DAY else (day, minute)
    wall = datetime.combine(day, time(minute // 60, minute % 60), zone)
    at = wall.astimezone(UTC)
    if at.astimezone(zone).replace(tzinfo=None) == wall.replace(tzinfo=None):
        return at
    return _gap_end(wall, at, zone)


def _gap_end(wall: datetime, at: datetime, zone: ZoneInfo) -> datetime:
    # For a skipped wall time, fold=0 reads it with the offset before the change (at)
    # and fold=1 with the offset after (earlier); the change lies in (earlier, at].
    earlier = wall.replace(fold=1).astimezone(UTC)
    after = at.astimezone(zone).utcoffset()
    lo, hi = int(earlier.timestamp()), int(at.timestamp())  # offset(lo) != after
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zone).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def local_date(at: datetime, zone: ZoneInfo) -> date:
    return at.astimezone(zone).date()


# --- openings


def day_hours(weekly: Weekly, closures: Sequence[Closure], zone: ZoneInfo, day: date) -> Day:
    """One local date's openings (each of its intervals, empty ones dropped)."""
    closure = next((c for c in closures if c.covers(day)), None)
    spans = weekly[day.weekday()] if closure is None else (closure.open or ())
    intervals = []
    for span in spans:
        start = local_instant(day, span.opens, zone)
        end = local_instant(day, span.closes, zone)
        if start < end:  # an interval inside a spring-forward gap is no time at all
            intervals.append(Interval(start, end))
    return Day(day, intervals, closure)


def days(
    weekly: Weekly, closures: Sequence[Closure], zone: ZoneInfo, from_date: date, to_date: date
) -> list[Day]:
    """Each local date of [from_date, to_date] with its openings and closure."""
    return [
        day_hours(weekly, closures, zone, from_date + timedelta(days=n))
        for n in range((to_date - from_date).days + 1)
    ]


def join(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, with touching or overlapping intervals made one."""
    joined: list[Interval] = []
    for interval in sorted(intervals):
        if joined and interval.start <= joined[-1].end:
            if interval.end > joined[-1].end:
                joined[-1] = Interval(joined[-1].start, interval.end)
        else:
            joined.append(interval)
    return joined


def openings(
    weekly: Weekly, closures: Sequence[Closure], zone: ZoneInfo, from_date: date, to_date: date
) -> list[Interval]:
    """The openings of the local dates [from_date, to_date], joined.

    An opening running on past either end is cut there (ask a wider range to see it whole)."""
    return join(i for d in days(weekly, closures, zone, from_date, to_date) for i in d.open)


def is_open(weekly: Weekly, closures: Sequence[Closure], zone: ZoneInfo, at: datetime) -> bool:
    """Whether the branch is open at the instant ``at``."""
    return covering_opening(weekly, closures, zone, at, at) is not None


def covering_opening(
    weekly: Weekly, closures: Sequence[Closure], zone: ZoneInfo, start: datetime, end: datetime
) -> Interval | None:
    """The one opening holding all of [start, end) (with ``start == end``: holding the
    instant ``start``), or None when the interval is not inside a single opening.

    Looks at the local days around ``start`` first; only an interval running past them
    asks ``next_change`` when that opening closes, so a long interval (an opening around
    the clock, or a hostile year-4000 query) costs a few two-week chunks, not one pass
    per day. The opening answered may be cut to the days looked at."""
    first = local_date(start, zone)
    around = openings(weekly, closures, zone, first - timedelta(days=1), first + timedelta(days=1))
    holding = next((o for o in around if o.start <= start < o.end), None)
    if holding is None:
        return None
    if end <= holding.end:
        return holding
    # Open at ``start``: the first change after it is this opening's closing time.
    closes = next_change(weekly, closures, zone, start)
    if closes is None:  # open for good
        return Interval(holding.start, end)
    return Interval(holding.start, closes) if end <= closes else None


_CHUNK_DAYS = 16  # more than two weeks: a template that is not always open changes in one
_WEEK_AND_A_DAY = timedelta(days=8)


def next_change(
    weekly: Weekly, closures: Sequence[Closure], zone: ZoneInfo, after: datetime
) -> datetime | None:
    """The first instant later than ``after`` at which the branch opens or closes; None
    when it stays open (or closed) for good: no change in the template and no closure
    ahead."""
    last_closure = max((c.date_to for c in closures), default=date.min)
    first = local_date(after, zone) - timedelta(days=1)
    while True:
        last = first + timedelta(days=_CHUNK_DAYS)
        window = Interval(local_instant(first, 0, zone), local_instant(last, 24 * 60, zone))
        for opening in openings(weekly, closures, zone, first, last):
            # The window's own edges are not changes: chunks overlap by a day, so each
            # edge is looked at again inside the next chunk.
            for edge in opening:
                if after < edge and window.start < edge < window.end:
                    return edge
        # No change here, and more than a week of the plain template after the last
        # closure looked at: a template that changes at all changes within any week.
        if last > last_closure + _WEEK_AND_A_DAY:
            return None
        first = last - timedelta(days=1)
