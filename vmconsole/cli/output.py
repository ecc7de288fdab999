"""How the CLI talks: JSON for scripts, plain text and a progress line for people."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields, is_dataclass
from datetime import datetime
from enum import Enum
from typing import Any

import humanize

from vmconsole.core.tasks import ProgressEvent


def to_jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in fields(value) if not f.name.startswith("_")}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    return value


def print_json(value: Any) -> None:
    print(json.dumps(to_jsonable(value), indent=2, sort_keys=True))


def emit(as_json: bool, value: Any, text: Callable[[], Iterable[str]], *, changed: bool | None = False) -> None:
    """A command's answer: ``value`` as JSON for scripts, else the lines ``text`` renders for people.

    An object answer carries ``changed`` (a read: false); ``changed=None`` leaves the answer as it is
    (a mapping of the user's own keys, where ``changed`` could be one of them). A list answer is a
    read's data: nothing changed."""
    if as_json:
        document = to_jsonable(value)
        if changed is not None and isinstance(document, dict):
            document = {**document, "changed": changed}
        print_json(document)
    else:
        for line in text():
            print(line)


def safe(text: object) -> str:
    """Cluster-supplied text for a terminal: control characters (escape sequences) made visible."""
    return "".join(ch if ch.isprintable() or ch in "\t" else f"\\x{ord(ch):02x}" for ch in str(text))


class ProgressPrinter:
    """One updating line on stderr while a task runs (only when stderr is a terminal)."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._last = 0.0
        self._lock = threading.Lock()
        self._width = 0

    def __call__(self, event: ProgressEvent) -> None:
        with self._lock:
            if event.kind in ("log", "undo", "failed", "done", "step"):
                self._line(f"[{event.percent:3.0f}%] {safe(event.message or event.step_name)}", final=True)
                return
            if not self.enabled or event.kind != "progress":
                return
            now = time.monotonic()
            if now - self._last < 0.2:
                return
            self._last = now
            rate = f" {humanize.naturalsize(event.rate, binary=True)}/s" if event.rate else ""
            eta = f" ETA {event.eta:.0f}s" if event.eta is not None else ""
            done = f" {humanize.naturalsize(event.done, binary=True)}/{humanize.naturalsize(event.total, binary=True)}"
            self._line(f"[{event.percent:3.0f}%] {safe(event.step_name)}{done}{rate}{eta}", final=False)

    def _line(self, text: str, final: bool) -> None:
        if not self.enabled:
            if final:
                print(text, file=sys.stderr, flush=True)
            return
        pad = max(0, self._width - len(text))
        sys.stderr.write("\r" + text + " " * pad + ("\n" if final else ""))
        sys.stderr.flush()
        self._width = 0 if final else len(text)


def confirm(prompt: str, expected: str, assume_yes: bool) -> bool:
    """Ask the operator to type ``expected``; refuse outright without a terminal (scripts pass --yes)."""
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        from vmconsole.domain.errors import ValidationError

        raise ValidationError(
            "this is destructive and there is no terminal to confirm on",
            field="--yes",
            hint="pass --yes in scripts, or --dry-run to see the plan",
        )
    answer = input(f"{prompt}\nType {expected!r} to confirm: ")
    return answer.strip() == expected
