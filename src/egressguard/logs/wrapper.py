"""Layer 1: take the line apart from whatever carried the kernel's message to us.

Shapes (spec: reference/netfilter-log-format.md §3):

- rsyslog high precision ``2025-01-19T16:13:46.406155+00:00 host kernel: msg`` (``iso8601``)
- RFC 3164 ``Jan  5 16:13:46 host kernel: msg``, optionally ``<PRI>`` first (``rfc3164``)
- RFC 5424 ``<5>1 2025-01-19T16:13:46Z host kernel - - - msg`` (``rfc5424``)
- ``journalctl -o json`` objects with ``_TRANSPORT=kernel`` (``journald``)
- ``dmesg`` ``[ 6236.551431] msg`` and ``dmesg -T`` ``[Sun Jan 19 16:13:46 2025] msg``
- ``/dev/kmsg`` records ``5,344,107477159,-;msg`` (``kmsg``)
- the message alone (``bare``)

Only the kernel may have written the line: the syslog tag (APP-NAME) must be ``kernel``, a
syslog PRI or kmsg prefix must carry facility 0 (kern; userspace cannot log with it, see
``devkmsg_write``), and journald records need ``_TRANSPORT=kernel``, which userspace cannot
forge. Anything else raises ``Rejected("not-kernel", ...)``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple

__all__ = ["Rejected", "Wrapped", "iso_from_epoch", "split_uptime", "unwrap", "valid_date"]

_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, 1)}
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class Rejected(Exception):
    """A line is not acceptable; becomes an ``Issue`` with this code and text."""

    def __init__(self, code: str, message: str, prefix: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.prefix = prefix


class Wrapped(NamedTuple):
    """What layer 1 found: the wrapper's fields and the kernel's message text."""

    kind: str
    time: str | None
    host: str | None
    priority: int | None
    uptime: float | None
    seq: int | None
    message: str


# RFC 3339 as rsyslog and RFC 5424 write it; ranges checked here, the day of the month by
# valid_date() (Feb 30 passes a regex). Digits are [0-9] throughout: in a str pattern \d is any
# Unicode decimal digit ("1\u0663" is 13 to int()), and nothing the kernel or a syslog daemon
# writes has others.
ISO_TIME = (
    r"(?P<date>[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01]))"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\.[0-9]{1,9})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
_ISO_RE = re.compile(rf"(?P<time>{ISO_TIME}) (?P<rest>.*)\Z", re.S)
_ISO_ONLY_RE = re.compile(rf"(?P<time>{ISO_TIME})\Z")
_PRI_RE = re.compile(r"<([0-9]{1,3})>")
_RFC3164_RE = re.compile(
    r"(?P<mon>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r" +(?P<day>[1-9]|[12][0-9]|3[01]|0[1-9])"
    r" (?P<h>[01][0-9]|2[0-3]):(?P<m>[0-5][0-9]):(?P<s>[0-5][0-9]|60) (?P<rest>.*)\Z",
    re.S,
)
# host (optional), tag, optional [pid], colon, one space
_HOST_TAG_RE = re.compile(r"(?:(?P<host>[^\s:]+) )?(?P<tag>[^\s:\[\]]+)(?:\[(?P<pid>[0-9]+)\])?: ?")
_STAMP_RE = re.compile(r"\[ *([0-9]+)\.([0-9]+)\](?:\[ *[TC][0-9]+\])? ?")
_DMESG_T_RE = re.compile(
    r"\[(?P<wd>Mon|Tue|Wed|Thu|Fri|Sat|Sun) "
    r"(?P<mon>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r" +(?P<day>[0-9]{1,2}) (?P<h>[01][0-9]|2[0-3]):(?P<m>[0-5][0-9]):(?P<s>[0-5][0-9]|60)"
    r" (?P<y>[0-9]{4})\] ?"
)
_KMSG_RE = re.compile(r"([0-9]{1,4}),([0-9]{1,20}),([0-9]{1,20}),([^;,]*)(?:,[^;]*)?;")
_RFC5424_RE = re.compile(
    r"<(?P<pri>[0-9]{1,3})>1 (?P<time>\S+) (?P<host>\S+) (?P<app>\S+) (?P<procid>\S+)"
    r" (?P<msgid>\S+) "
)

_valid_dates: dict[str, bool] = {}


def valid_date(text: str) -> bool:
    """True when ``YYYY-MM-DD`` names a real day (cached: a log holds few distinct dates)."""
    ok = _valid_dates.get(text)
    if ok is None:
        try:
            date.fromisoformat(text)
            ok = True
        except ValueError:
            ok = False
        if len(_valid_dates) > 4096:
            _valid_dates.clear()
        _valid_dates[text] = ok
    return ok


def _digits(text: str) -> bool:
    """ASCII digits only (``str.isdigit`` also takes "\u0663" and "²")."""
    return text.isascii() and text.isdigit()


def iso_from_epoch(seconds: float) -> str:
    """``1737303226.406155`` → ``2025-01-19T16:13:46.406155+00:00``."""
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat()


def split_uptime(message: str) -> tuple[float | None, str]:
    """A leading kernel stamp ``[ 6236.551431] `` (and a ``[T123]`` caller id) off ``message``."""
    m = _STAMP_RE.match(message)
    if m is None:
        return None, message
    return float(f"{m.group(1)}.{m.group(2)}"), message[m.end() :]


def _check_priority(pri: int, where: str) -> int:
    if pri > 191:
        raise Rejected("bad-wrapper", f"{where} <{pri}> is not a syslog priority (0-191)")
    if pri >> 3 != 0:
        raise Rejected(
            "not-kernel",
            f"{where} <{pri}> has facility {pri >> 3}, not kern (0): not written by the kernel",
        )
    return pri


def _check_tag(tag: str, pid: str | None) -> None:
    if tag != "kernel" or pid is not None:
        shown = f"{tag}[{pid}]" if pid is not None else tag
        raise Rejected(
            "not-kernel", f"syslog tag {shown!r} is not 'kernel': not written by the kernel"
        )


def _host_and_message(rest: str) -> tuple[str | None, str]:
    m = _HOST_TAG_RE.match(rest)
    if m is None:
        raise Rejected("bad-wrapper", "no 'host tag:' after the syslog timestamp")
    _check_tag(m.group("tag"), m.group("pid"))
    return m.group("host"), rest[m.end() :]


def _rfc3164_time(m: re.Match[str], reference: datetime | None) -> str | None:
    """ISO time of an RFC 3164 stamp; the year is the latest one not after ``reference`` + 1 day
    (RFC 3164 has no year). ``None`` without a reference."""
    month, day = MONTHS[m.group("mon")], int(m.group("day"))
    h, mi, s = int(m.group("h")), int(m.group("m")), min(int(m.group("s")), 59)
    if reference is None:
        if not _day_exists(month, day):
            raise Rejected("bad-wrapper", f"{m.group('mon')} {day} is not a day of any year")
        return None
    limit = reference.replace(tzinfo=None) + timedelta(days=1)
    for year in (reference.year + 1, reference.year, reference.year - 1, reference.year - 4):
        try:
            when = datetime(year, month, day, h, mi, s)
        except ValueError:
            continue
        if when <= limit:
            return when.isoformat()
    raise Rejected("bad-wrapper", f"{m.group('mon')} {day} is not a day of a recent year")


def _day_exists(month: int, day: int) -> bool:
    try:
        date(2024, month, day)  # a leap year: Feb 29 exists
    except ValueError:
        return False
    return True


def _sd_end(text: str) -> int:
    """Index just after RFC 5424 STRUCTURED-DATA at the start of ``text``."""
    if text.startswith("-"):
        return 1
    i = 0
    if not text.startswith("["):
        raise Rejected("bad-wrapper", "RFC 5424 structured data is neither '-' nor '[...]'")
    while i < len(text) and text[i] == "[":
        i += 1
        while True:
            if i >= len(text):
                raise Rejected("bad-wrapper", "RFC 5424 structured data is not closed")
            c = text[i]
            if c == "\\":
                i += 2
                continue
            if c == "]":
                i += 1
                break
            i += 1
    return i


def _unwrap_rfc5424(line: str) -> Wrapped:
    m = _RFC5424_RE.match(line)
    if m is None:
        raise Rejected("bad-wrapper", "malformed RFC 5424 header")
    pri = _check_priority(int(m.group("pri")), "RFC 5424 PRI")
    stamp = m.group("time")
    time: str | None = None
    if stamp != "-":
        tm = _ISO_ONLY_RE.match(stamp)
        if tm is None or not valid_date(tm.group("date")):
            raise Rejected("bad-wrapper", f"RFC 5424 timestamp {stamp!r} is not RFC 3339")
        time = stamp
    app = m.group("app")
    if app != "kernel":
        raise Rejected(
            "not-kernel", f"RFC 5424 APP-NAME {app!r} is not 'kernel': not written by the kernel"
        )
    rest = line[m.end() :]
    end = _sd_end(rest)
    msg = rest[end:]
    if msg.startswith(" "):
        msg = msg[1:]
    elif msg:
        raise Rejected("bad-wrapper", "no space after RFC 5424 structured data")
    msg = msg.removeprefix("\ufeff")
    host = m.group("host")
    uptime, msg = split_uptime(msg)
    return Wrapped("rfc5424", time, None if host == "-" else host, pri, uptime, None, msg)


def _unwrap_journald(line: str, boot_time: float | None) -> Wrapped:
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise Rejected("bad-wrapper", f"not a journald JSON record: {exc}") from None
    if not isinstance(record, dict):
        raise Rejected("bad-wrapper", "journald record is not a JSON object")
    transport = record.get("_TRANSPORT")
    if transport != "kernel":
        raise Rejected(
            "not-kernel",
            f"journald _TRANSPORT is {transport!r}, not 'kernel': not written by the kernel",
        )
    message = record.get("MESSAGE")
    if isinstance(message, list):  # journald exports non-UTF-8 messages as byte arrays
        if not all(isinstance(b, int) and 0 <= b <= 255 for b in message):
            raise Rejected("bad-wrapper", "journald MESSAGE array is not bytes")
        message = bytes(message).decode("utf-8", errors="replace")
    if not isinstance(message, str):
        raise Rejected("bad-wrapper", "journald record has no MESSAGE")
    time: str | None = None
    realtime = record.get("__REALTIME_TIMESTAMP")
    if realtime is not None:
        if not (isinstance(realtime, str) and _digits(realtime) and len(realtime) <= 20):
            raise Rejected("bad-wrapper", f"journald __REALTIME_TIMESTAMP {realtime!r} is not µs")
        time = iso_from_epoch(int(realtime) / 1_000_000)
    uptime: float | None = None
    mono = record.get("_SOURCE_MONOTONIC_TIMESTAMP")
    if isinstance(mono, str) and _digits(mono) and len(mono) <= 20:
        uptime = int(mono) / 1_000_000
    priority: int | None = None
    prio = record.get("PRIORITY")
    if isinstance(prio, str) and _digits(prio) and len(prio) == 1:
        priority = int(prio)
    host = record.get("_HOSTNAME")
    if time is None and uptime is not None and boot_time is not None:
        time = iso_from_epoch(boot_time + uptime)
    stamp, message = split_uptime(message)
    if uptime is None:
        uptime = stamp
    return Wrapped(
        "journald", time, host if isinstance(host, str) else None, priority, uptime, None, message
    )


def _unwrap_kmsg(line: str, m: re.Match[str], boot_time: float | None) -> Wrapped:
    pri = int(m.group(1))
    if pri >> 3 != 0:
        raise Rejected(
            "not-kernel",
            f"kmsg record has facility {pri >> 3}, not kern (0): written to /dev/kmsg by userspace",
        )
    seq, usec = int(m.group(2)), int(m.group(3))
    uptime = usec / 1_000_000
    time = iso_from_epoch(boot_time + uptime) if boot_time is not None else None
    return Wrapped("kmsg", time, None, pri, uptime, seq, line[m.end() :])


def unwrap(
    line: str, *, reference: datetime | None = None, boot_time: float | None = None
) -> Wrapped:
    """Split ``line`` into wrapper fields and the kernel message; raise ``Rejected``.

    ``reference`` supplies the year for RFC 3164 stamps (a file's mtime, or now); ``boot_time``
    (seconds since the epoch) turns kmsg/dmesg uptimes into wall-clock times.
    """
    first = line[:1]
    if first == "{":
        return _unwrap_journald(line, boot_time)
    pri: int | None = None
    body = line
    if first == "<":
        if line.startswith("1 ", line.find(">") + 1):
            return _unwrap_rfc5424(line)
        pm = _PRI_RE.match(line)
        if pm is None:
            return _bare(line, boot_time)
        pri = _check_priority(int(pm.group(1)), "syslog PRI")
        body = line[pm.end() :]
        if _RFC3164_RE.match(body) is None and _ISO_RE.match(body) is None:
            raise Rejected("bad-wrapper", "syslog PRI is not followed by a timestamp")
    if _digits(first) or (pri is not None and _digits(body[:1])):
        im = _ISO_RE.match(body)
        if im is not None:
            if not valid_date(im.group("date")):
                raise Rejected("bad-wrapper", f"{im.group('date')} is not a day of the calendar")
            host, msg = _host_and_message(im.group("rest"))
            uptime, msg = split_uptime(msg)
            return Wrapped("iso8601", im.group("time"), host, pri, uptime, None, msg)
        km = _KMSG_RE.match(line)
        if km is not None:
            return _unwrap_kmsg(line, km, boot_time)
    rm = _RFC3164_RE.match(body)
    if rm is not None:
        time = _rfc3164_time(rm, reference)
        host, msg = _host_and_message(rm.group("rest"))
        uptime, msg = split_uptime(msg)
        return Wrapped("rfc3164", time, host, pri, uptime, None, msg)
    if first == "[":
        tm = _DMESG_T_RE.match(line)
        if tm is not None:
            return _dmesg_t(line, tm)
    return _bare(line, boot_time)


def _bare(line: str, boot_time: float | None) -> Wrapped:
    uptime, msg = split_uptime(line)
    if uptime is None:
        return Wrapped("bare", None, None, None, None, None, line)
    time = iso_from_epoch(boot_time + uptime) if boot_time is not None else None
    return Wrapped("dmesg", time, None, None, uptime, None, msg)


def _dmesg_t(line: str, m: re.Match[str]) -> Wrapped:
    try:
        when = datetime(
            int(m.group("y")),
            MONTHS[m.group("mon")],
            int(m.group("day")),
            int(m.group("h")),
            int(m.group("m")),
            min(int(m.group("s")), 59),
        )
    except ValueError:
        raise Rejected("bad-wrapper", "dmesg -T date is not a day of the calendar") from None
    if WEEKDAYS[when.weekday()] != m.group("wd"):
        raise Rejected("bad-wrapper", f"dmesg -T says {m.group('wd')} but {when.date()} is not one")
    return Wrapped("dmesg-T", when.isoformat(), None, None, None, None, line[m.end() :])
