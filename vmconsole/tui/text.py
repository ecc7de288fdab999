"""Safe, literal text for the console: every cluster-supplied string goes through here.

Names, metadata values and failure texts come from the cluster and may hold Rich markup (``[red]``)
or terminal escape sequences (``\\x1b[2J``). They are only ever shown through ``rich.text.Text``
objects built here, never formatted into markup, and control characters are made visible as
``\\xNN`` so nothing reaches the terminal as a command.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from rich.text import Text

if TYPE_CHECKING:
    from rich.syntax import Syntax

from vmconsole.domain.model import VmState, VmStatus

STATUS_STYLES: dict[VmStatus, str] = {
    VmStatus.STARTED: "bold green",
    VmStatus.STARTING: "yellow",
    VmStatus.STOPPING: "yellow",
    VmStatus.STOPPED: "dim",
    VmStatus.DISABLED: "blue",
    VmStatus.FAILED: "bold red",
    VmStatus.UNDEFINED: "magenta",
}


def safe(value: object) -> str:
    """The text with every non-printable character (ESC, BEL, CR, NUL...) shown as ``\\xNN``."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() else (f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}") for ch in text
    )


def plain(value: object, style: str = "") -> Text:
    """A literal ``Text``: no markup is parsed, control characters are made visible.

    The style covers this text only (a span), so what is appended later does not inherit it.
    """
    result = Text(safe(value), end="")
    if style:
        result.stylize(style)
    return result


def literal_block(value: str) -> str:
    """A multi-line text (an XML, a diff) for ``Syntax``: each line made safe, line breaks kept,
    tabs as four spaces."""
    return "\n".join(safe(line.replace("\t", "    ")) for line in value.splitlines())


def highlighted(value: str, lexer: str, *, line_numbers: bool = False, word_wrap: bool = False) -> Syntax:
    """A multi-line text made safe (``literal_block``) and highlighted. Pygments is loaded here, when a
    screen first shows one, not at the console's start."""
    from rich.syntax import Syntax

    return Syntax(literal_block(value), lexer, theme="ansi_dark", line_numbers=line_numbers, word_wrap=word_wrap)


def join(parts: Iterable[Text | str], separator: str = "") -> Text:
    """Concatenate; ``str`` parts are program text (never cluster data) and are taken literally."""
    result = Text(end="")
    first = True
    for part in parts:
        if not first and separator:
            result.append(separator)
        first = False
        result.append(part if isinstance(part, Text) else Text(part))
    return result


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def size(value: int | None) -> str:
    """Bytes in binary units, compact: ``512 B``, ``64 MiB``, ``1.5 GiB``."""
    if value is None:
        return "-"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            if unit == "B" or amount >= 100 or amount == int(amount):
                return f"{amount:.0f} {unit}"
            return f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.0f} PiB"  # pragma: no cover


def age(when: datetime | None, now: datetime) -> str:
    """How long ago, compact: ``42s``, ``12m``, ``3h``, ``5d``; ``-`` when unknown."""
    if when is None:
        return "-"
    return seconds_short((now - when).total_seconds())


def table_age(when: datetime | None, now: datetime) -> str:
    """``age`` for a column of many rows: past the first minute it is counted to the minute ``now``
    began, so every row's age moves on the minute, all together (one redraw of a 500-VM table a
    minute, not one at every refresh when ages cross their minutes one after another). At most a
    minute behind; the first minute in seconds, as ``age``."""
    if when is None:
        return "-"
    seconds = (now - when).total_seconds()
    if seconds < 60:
        return seconds_short(seconds)
    return seconds_short(max((now.replace(second=0, microsecond=0) - when).total_seconds(), 60))


def seconds_short(seconds: float) -> str:
    value = max(int(seconds), 0)
    if value < 60:
        return f"{value}s"
    if value < 3600:
        return f"{value // 60}m"
    if value < 86400:
        return f"{value // 3600}h"
    return f"{value // 86400}d"


def duration(seconds: float | None) -> str:
    """A duration for people: ``7 s``, ``2 min 5 s``, ``1 h 3 min``."""
    if seconds is None:
        return "unknown"
    value = max(round(seconds), 0)
    if value < 60:
        return f"{value} s"
    if value < 3600:
        return f"{value // 60} min {value % 60} s" if value % 60 else f"{value // 60} min"
    return f"{value // 3600} h {value % 3600 // 60} min"


def stamp(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M") if when else "-"


def status_text(vm: VmState) -> Text:
    """The coloured status, flagged ``!`` when failed and ``blk`` when Pacemaker blocks it."""
    text = Text(vm.status.value, style=STATUS_STYLES.get(vm.status, ""), end="")
    if vm.failed and vm.status is not VmStatus.FAILED:
        text.append(" !", style="bold red")
    if vm.blocked:
        text.append(" blk", style="bold red reverse")
    return text


def where(vm: VmState) -> Text:
    """``web1 (Started on hv1)``: every confirmation names the VM and its node."""
    out = plain(vm.name, "bold")
    out.append(" (")
    out.append(status_text(vm))
    if vm.node:
        out.append(" on ")
        out.append(plain(vm.node, "bold"))
    out.append(")")
    return out


def rate(value: float) -> str:
    return f"{size(int(value))}/s" if value > 0 else "-"
