"""Checks for everything an operator types: names, keys, options, timeouts, dates and counts.

Every check either returns the value (normalised where said) or raises ``ValidationError`` with
``field=`` naming the bad input and a message saying exactly what is wrong. Nothing here talks to the
cluster: the caller passes in whatever cluster facts a check needs (the node list, the current time).

Characters from user input are never echoed raw into a message: control and escape characters are
shown as ``U+001B`` so an error can never repaint the operator's terminal.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo

from vmconsole.domain import naming, units
from vmconsole.domain.errors import ValidationError
from vmconsole.domain.settings import RESERVED_KEYS

# --- VM names ------------------------------------------------------------------------------------

# Every name derived from a VM name stays under 64 characters with this limit: the longest are
# ``cli-prefer-<vm>`` (11 + 48 = 59, Pacemaker's move constraint), ``data_<vm>_<i>`` (5 + 48 + 4 = 57,
# up to 999 disks) and ``system_<vm>`` (55). 64 is HOST_NAME_MAX on Linux, and a VM's name is often its
# guest's hostname too; it also keeps the name readable in the console's fixed-width name column.
VM_NAME_MAX = 48
# An RBD image name is at most this long in practice (a name vm_manager made can be this long).
EXISTING_VM_NAME_MAX = 200

# vm_manager's RESERVED_NAMES: ``xml`` (exact, as vm_manager compares it).
RESERVED_VM_NAMES = frozenset({"xml"})
# vmconsole keeps its own objects (locks, journal) in the pool under this prefix (any case).
RESERVED_VM_PREFIX = "vmconsole"

# --- RBD metadata ----------------------------------------------------------------------------------

METADATA_KEY_MAX = 64
METADATA_VALUE_MAX_BYTES = 64 * 1024

# --- Snapshots -------------------------------------------------------------------------------------

SNAPSHOT_NAME_MAX = 64
_SNAPSHOT_EXTRA = "-_.:"

# --- Pacemaker ----------------------------------------------------------------------------------

_NVPAIR_NAME = re.compile(r"[A-Za-z0-9_.-]+")
# A timeout longer than a day is a typo, not an intent; Pacemaker would wait that long.
TIMEOUT_MAX_SECONDS = 24 * 3600

_DIGITS = re.compile(r"[0-9]+")  # not str.isdigit(): it accepts '²' and other Unicode digits
COUNT_MAX_DIGITS = 18  # a count, port or size past this is a typo; int() refuses thousands of digits anyway


# --- helpers -------------------------------------------------------------------------------------


def describe_char(char: str) -> str:
    """A character as a message may safely name it: quoted if printable, else only its code point.

    ``'-'``, ``a space``, ``the non-ASCII character 'é' (U+00E9)``, ``the control character U+001B``,
    ``the invisible character U+200B``.
    """
    code = f"U+{ord(char):04X}"
    if char == " ":
        return "a space"
    if not char.isprintable():
        return f"the control character {code}" if char.isascii() else f"the invisible character {code}"
    if char.isascii():
        return repr(char)
    return f"the non-ASCII character {char!r} ({code})"


def show(text: str, limit: int = 60) -> str:
    """User text quoted for a message: non-printable characters escaped, long text shortened."""
    shortened = text if len(text) <= limit else text[: limit - 1] + "…"
    escaped = "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in shortened)
    return f"'{escaped}'"


def _require_str(value: object, field: str, what: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a string, got {type(value).__name__}", field=field)
    return value


def _check_alphanumeric(text: str, field: str, what: str) -> None:
    """vm_manager's ``^[a-zA-Z0-9]+$``, with a message naming the first offending character."""
    for position, char in enumerate(text, start=1):
        if char.isascii() and char.isalnum():
            continue
        raise ValidationError(
            f"{what} contains {describe_char(char)} at position {position}, which is not allowed;"
            " use only ASCII letters (a-z, A-Z) and digits",
            field=field,
        )


# --- names ---------------------------------------------------------------------------------------


def vm_name(name: object, field: str = "name") -> str:
    """A new VM name: ASCII letters and digits, starting with a letter, at most 48, not reserved.

    Every name accepted here is also accepted by vm_manager's ``_check_name``. One rule is stricter:
    the name becomes the Pacemaker primitive's ``id``, an XML ID, which cannot start with a digit, so
    vm_manager would create a VM named ``1vm`` that it could never enable.
    """
    text = _require_str(name, field, "the VM name")
    if not text:
        raise ValidationError("the VM name is empty", field=field)
    if len(text) > VM_NAME_MAX:
        raise ValidationError(f"the VM name is {len(text)} characters long; the maximum is {VM_NAME_MAX}", field=field)
    _check_alphanumeric(text, field, "the VM name")
    if text in RESERVED_VM_NAMES:
        raise ValidationError(f"{show(text)} is a reserved name (vm_manager uses it)", field=field)
    if text.lower().startswith(RESERVED_VM_PREFIX):
        raise ValidationError(
            f"names starting with '{RESERVED_VM_PREFIX}' (any case) are reserved for vmconsole's own"
            " objects in the pool",
            field=field,
        )
    if text[0].isdigit():
        raise ValidationError(
            "the VM name must start with a letter: it is also the Pacemaker resource id, an XML ID",
            field=field,
        )
    return text


def existing_vm_name(name: object, field: str = "name") -> str:
    """The name of a VM that may exist already: what vm_manager accepts (ASCII letters and digits,
    ``^[a-zA-Z0-9]+$``), so every VM it made can be listed and operated. A leading digit, a long name
    or a ``vmconsole`` prefix are refused only where a VM is created (``vm_name``); vmconsole's own
    temporary objects are never operated as VMs."""
    text = _require_str(name, field, "the VM name")
    if not text:
        raise ValidationError("the VM name is empty", field=field)
    if len(text) > EXISTING_VM_NAME_MAX:
        raise ValidationError(
            f"the VM name is {len(text)} characters long; no VM name exceeds {EXISTING_VM_NAME_MAX}", field=field
        )
    _check_alphanumeric(text, field, "the VM name")
    if naming.is_temporary(text):
        raise ValidationError(f"{show(text)} is one of vmconsole's temporary objects, not a VM", field=field)
    return text


def metadata_key(key: object, field: str = "key") -> str:
    """A user metadata key: ASCII letters and digits (vm_manager's rule), at most 64, not internal."""
    text = _require_str(key, field, "the metadata key")
    if not text:
        raise ValidationError("the metadata key is empty", field=field)
    # Checked before the character rule, so ``_stop_timeout`` gets the telling message.
    if text in RESERVED_KEYS or text.startswith("_"):
        raise ValidationError(
            f"{show(text)} is managed by vmconsole/vm_manager and cannot be set as user metadata",
            field=field,
            hint="internal settings change through their own commands",
        )
    if len(text) > METADATA_KEY_MAX:
        raise ValidationError(
            f"the metadata key is {len(text)} characters long; the maximum is {METADATA_KEY_MAX}",
            field=field,
        )
    _check_alphanumeric(text, field, "the metadata key")
    return text


def metadata_value(value: object, field: str = "value") -> str:
    """A user metadata value: any string without NUL, at most 64 KiB once encoded as UTF-8."""
    text = _require_str(value, field, "the metadata value")
    if "\x00" in text:
        raise ValidationError(
            f"the metadata value contains a NUL character at position {text.index(chr(0)) + 1}",
            field=field,
        )
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:  # a lone surrogate: an argv byte that was not UTF-8
        raise ValidationError(
            f"the metadata value contains {describe_char(text[exc.start])} at position {exc.start + 1},"
            " which is not text (a byte that is not UTF-8?)",
            field=field,
        ) from exc
    if size > METADATA_VALUE_MAX_BYTES:
        raise ValidationError(
            f"the metadata value is {size} bytes; the maximum is {METADATA_VALUE_MAX_BYTES} (64 KiB)",
            field=field,
        )
    return text


def snapshot_name(name: object, field: str = "snapshot") -> str:
    """A new snapshot name: ASCII letters, digits and ``- _ . :``, starting with a letter or digit.

    ``@`` and ``/`` would break RBD's ``pool/image@snap`` spec; spaces, ``[ ]`` (console markup) and
    control characters are unsafe in a terminal. A leading ``.`` could collide with the ``.group.*``
    snapshots RBD shows for group snapshots, a leading ``-`` reads as a command-line option. ``:``
    stays allowed so ISO timestamps (``2026-11-26T03:00:00``) can be names.
    """
    text = _require_str(name, field, "the snapshot name")
    if not text:
        raise ValidationError("the snapshot name is empty", field=field)
    if len(text) > SNAPSHOT_NAME_MAX:
        raise ValidationError(
            f"the snapshot name is {len(text)} characters long; the maximum is {SNAPSHOT_NAME_MAX}",
            field=field,
        )
    for position, char in enumerate(text, start=1):
        if char.isascii() and (char.isalnum() or char in _SNAPSHOT_EXTRA):
            continue
        raise ValidationError(
            f"the snapshot name contains {describe_char(char)} at position {position}, which is"
            " not allowed; use ASCII letters, digits and - _ . :",
            field=field,
        )
    if not text[0].isalnum():
        raise ValidationError(
            f"the snapshot name must start with a letter or a digit, not {describe_char(text[0])}",
            field=field,
        )
    return text


def default_snapshot_name(now: datetime | None = None) -> str:
    """``snap-YYYYMMDD-HHMMSS`` in UTC, e.g. ``snap-20261126-030000``; ``now`` must be aware."""
    moment = now if now is not None else datetime.now(UTC)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("default_snapshot_name needs an aware datetime (a naive one is ambiguous)")
    return moment.astimezone(UTC).strftime("snap-%Y%m%d-%H%M%S")


def node_name(name: object, known_nodes: Iterable[str], field: str = "node") -> str:
    """A cluster node name, which must be one of ``known_nodes`` (exact, case-sensitive)."""
    text = _require_str(name, field, "the node name")
    nodes = sorted(set(known_nodes))
    if not text:
        raise ValidationError("the node name is empty", field=field)
    if text in nodes:
        return text
    if not nodes:
        raise ValidationError(f"{show(text)} is not a cluster node: no node is known", field=field)
    raise ValidationError(f"{show(text)} is not a cluster node; known nodes: {', '.join(nodes)}", field=field)


# --- Pacemaker options and timeouts -------------------------------------------------------------


def _option_value_text(value: object, field: str) -> str:
    if isinstance(value, bool):
        # Pacemaker's own spelling of booleans.
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(f"{value} is not a usable number", field=field)
        return str(value)
    if isinstance(value, str):
        for position, char in enumerate(value, start=1):
            # XML 1.0 cannot carry most control characters and the CIB is XML; newlines and tabs
            # are refused too, as they only garble crm's and the console's one-line views.
            if not char.isprintable():
                raise ValidationError(
                    f"the value contains {describe_char(char)} at position {position}",
                    field=field,
                )
        return value
    raise ValidationError(f"expected a string or a number, got {type(value).__name__}", field=field)


def pacemaker_options(value: object, field: str, *, reserved: Collection[str] = ()) -> dict[str, str]:
    """A name→value mapping for a Pacemaker meta/params/utilization set, returned as str→str.

    Values may be str, int, float or bool (``true``/``false``); names follow the nvpair rule (ASCII
    letters, digits, ``-``, ``_``, ``.``). ``reserved`` names are those vmconsole sets itself (e.g.
    ``target-role``, ``is-managed``): an option may not override them.
    """
    if not isinstance(value, Mapping):
        raise ValidationError(f"expected a mapping of name = value, got {type(value).__name__}", field=field)
    result: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise ValidationError(f"option names must be strings, got {key!r}", field=field)
        if not key:
            raise ValidationError("an option name is empty", field=field)
        if not _NVPAIR_NAME.fullmatch(key):
            bad = next(ch for ch in key if not _NVPAIR_NAME.fullmatch(ch))
            raise ValidationError(
                f"option name {show(key)} contains {describe_char(bad)}; use ASCII letters, digits, '-', '_' and '.'",
                field=field,
            )
        if key in reserved:
            raise ValidationError(
                f"option {show(key)} is set by vmconsole itself and cannot be overridden", field=field
            )
        result[key] = _option_value_text(item, f"{field}.{key}")
    return result


def timeout_seconds(value: object, field: str) -> str:
    """A positive whole number of seconds, as Pacemaker wants it: ``"30"``.

    Accepts an int, a string of digits, or digits with a unit ``s``/``sec``, ``m``/``min``,
    ``h``/``hr`` (Pacemaker's spellings); the result is always plain seconds. Bools, floats, zero,
    negatives and anything over a day are refused.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValidationError(f"expected a whole number of seconds, got {type(value).__name__}", field=field)
    if isinstance(value, int):
        seconds = value
    elif len(value.strip()) > 40:
        raise ValidationError(f"{show(value)} is not a timeout; write seconds such as 30, 30s, 2min or 1h", field=field)
    else:
        duration = units.parse_duration(value)
        if duration is None or duration.unit not in units.WHOLE_SECOND_UNITS:
            raise ValidationError(
                f"{show(value)} is not a timeout; write seconds such as 30, 30s, 2min or 1h",
                field=field,
            )
        seconds = int(duration.seconds())
    if seconds <= 0:
        raise ValidationError(f"the timeout must be at least 1 second, got {seconds}", field=field)
    if seconds > TIMEOUT_MAX_SECONDS:
        raise ValidationError(
            f"the timeout is {seconds} s; the maximum is {TIMEOUT_MAX_SECONDS} s (one day)", field=field
        )
    return str(seconds)


def count(value: object, field: str) -> int:
    """A non-negative int (an int, or a string of ASCII digits); bools and floats are refused."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValidationError(f"expected a whole number, got {type(value).__name__}", field=field)
    if isinstance(value, str):
        if not _DIGITS.fullmatch(value.strip()):
            raise ValidationError(f"{show(value)} is not a whole number >= 0", field=field)
        if len(value.strip()) > COUNT_MAX_DIGITS:
            raise ValidationError(f"{show(value)} is too large (at most {COUNT_MAX_DIGITS} digits)", field=field)
        return int(value.strip())
    if value < 0:
        raise ValidationError(f"must be 0 or more, got {value}", field=field)
    if value >= 10**COUNT_MAX_DIGITS:
        raise ValidationError(f"{value} is too large (at most {COUNT_MAX_DIGITS} digits)", field=field)
    return value


# --- dates -----------------------------------------------------------------------------------------

ACCEPTED_DATE_FORMATS = (
    "2026-11-26T03:00[:00][Z|+01:00] (ISO 8601)",
    "2026-11-26 03:00[:00]",
    "2026-11-26 (midnight)",
    "26/11/2026 03:00[:00] (day/month/year, vm_manager's)",
    "@1795662000 (seconds since 1970-01-01 UTC)",
)

_ISO = re.compile(
    r"(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})"
    r"(?:[T ](?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:\.(?P<f>\d{1,6}))?)?"
    r"(?P<tz>Z|[+-]\d{2}:?\d{2})?)?",
    re.IGNORECASE | re.ASCII,
)
_DMY = re.compile(
    r"(?P<d>\d{2})/(?P<mo>\d{2})/(?P<y>\d{4})(?:\s+(?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?)?",
    re.ASCII,
)
_EPOCH = re.compile(r"@(?P<sec>\d{1,12})", re.ASCII)


@dataclass(frozen=True)
class ParsedDatetime:
    """An aware datetime, and whether it came from naive input read as local time."""

    value: datetime
    assumed_local: bool

    def describe(self) -> str:
        """How the UI can echo it back, e.g. ``2026-11-26 03:00:00 +01:00 (read as local time)``."""
        text = self.value.isoformat(sep=" ")
        return f"{text} (read as local time)" if self.assumed_local else text


def _offset(text: str) -> tzinfo:
    if text.upper() == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:])
    if hours > 23 or minutes > 59:
        raise ValueError(f"UTC offset {text} is out of range")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _garbage(text: str, field: str, reason: str | None = None) -> ValidationError:
    detail = f" ({reason})" if reason else ""
    return ValidationError(
        f"{show(text)} is not a date{detail}; accepted formats: {'; '.join(ACCEPTED_DATE_FORMATS)}",
        field=field,
    )


def parse_datetime(text: object, tz: tzinfo | None = None, *, field: str = "before") -> ParsedDatetime:
    """Parse a purge ``--before`` date into an aware datetime (formats in ``ACCEPTED_DATE_FORMATS``).

    A date with ``Z`` or an offset, or an ``@epoch``, is taken as is. A naive date is read in ``tz``,
    or in this machine's local time zone when ``tz`` is None, and ``assumed_local`` is set so the UI
    can say so (a naive date compared with UTC timestamps would be off by the local offset). A date alone
    means midnight at the start of that day.
    """
    raw = _require_str(text, field, "the date")
    stripped = raw.strip()
    if not stripped:
        raise ValidationError("the date is empty", field=field)
    try:
        epoch = _EPOCH.fullmatch(stripped)
        if epoch:
            return ParsedDatetime(datetime.fromtimestamp(int(epoch["sec"]), UTC), assumed_local=False)
        match = _ISO.fullmatch(stripped) or _DMY.fullmatch(stripped)
        if match is None:
            raise _garbage(raw, field)
        parts = match.groupdict()
        naive = datetime(
            int(parts["y"]),
            int(parts["mo"]),
            int(parts["d"]),
            int(parts["h"] or 0),
            int(parts["mi"] or 0),
            int(parts["s"] or 0),
            int((parts.get("f") or "0").ljust(6, "0")),
        )
        offset = _offset(parts["tz"]) if parts.get("tz") else None
    # A day 31 in November, hour 25, offset +30:00, an epoch past year 9999...
    except (ValueError, OverflowError, OSError) as exc:
        raise _garbage(raw, field, str(exc)) from exc
    if offset is not None:
        return ParsedDatetime(naive.replace(tzinfo=offset), assumed_local=False)
    if tz is not None:
        return ParsedDatetime(naive.replace(tzinfo=tz), assumed_local=True)
    # astimezone() on a naive datetime reads it as system local time, daylight saving included.
    try:
        local = naive.astimezone()
    except (ValueError, OverflowError, OSError) as exc:  # the first or last day of the calendar
        raise _garbage(raw, field, str(exc)) from exc
    return ParsedDatetime(local, assumed_local=True)


def not_in_future(when: datetime, now: datetime | None = None, *, field: str = "before") -> datetime:
    """Refuse a date later than ``now`` (default: the current time); both must be aware."""
    moment = now if now is not None else datetime.now(UTC)
    if when.tzinfo is None or moment.tzinfo is None:
        raise ValueError("not_in_future compares aware datetimes only (naive ones are ambiguous)")
    if when > moment:
        ahead = when - moment
        raise ValidationError(
            f"{when.isoformat(sep=' ')} is in the future (by {_human_delta(ahead)});"
            f" it is now {moment.astimezone(when.tzinfo).isoformat(sep=' ', timespec='seconds')}",
            field=field,
        )
    return when


def _human_delta(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            amount = seconds // size
            return f"{amount} {unit}{'s' if amount > 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"
