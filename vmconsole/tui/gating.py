"""Read-only gating, in one place, for every way an action can be asked for.

Every binding that runs a console action is ``act('name')`` (``act(name)`` spells it), on every
screen and widget. In read-only mode a mutating action is refused with its reason:

* its key is greyed out in the footer and the help: ``check_action`` answers None;
* pressing that key says why (``refuse_disabled_key``, from the screen's ``on_key``), instead of
  doing nothing;
* ``perform`` (keys, palette, ``:`` line), and the screens' own buttons, ask ``refused``;
* the palette marks it and the help shows the reason (``disabled_reason``, ``binding_reason``).
"""

from __future__ import annotations

from typing import Any

from textual import events
from textual.actions import parse as parse_action
from textual.app import App
from textual.binding import Binding
from textual.screen import Screen

from vmconsole.tui import text
from vmconsole.tui.actions import BY_NAME, ActionSpec
from vmconsole.tui.console import console_of

VERB = "act"


def act(name: str) -> str:
    """The binding action that runs the console action ``name``."""
    return f"{VERB}('{name}')"


def acted(action: str, parameters: tuple[object, ...]) -> ActionSpec | None:
    """The console action an ``act('name')`` binding runs (None for any other binding)."""
    return BY_NAME.get(str(parameters[0])) if action == VERB and parameters else None


def disabled_reason(app: App[Any], spec: ActionSpec | None) -> str | None:
    """Why ``spec`` cannot run now (a mutating action in read-only mode), or None."""
    console = console_of(app)
    if spec is not None and spec.mutating and console.read_only:
        return console.read_only_reason or "read-only mode"
    return None


def notify_disabled(app: App[Any], spec: ActionSpec, reason: str) -> None:
    app.notify(text.safe(f"{spec.label} is disabled: {reason}"), title="Read-only", severity="warning", markup=False)


def refused(app: App[Any], spec: ActionSpec) -> bool:
    """True (and the operator told why) when ``spec`` is disabled."""
    reason = disabled_reason(app, spec)
    if reason is not None:
        notify_disabled(app, spec, reason)
    return reason is not None


def check_action(app: App[Any], action: str, parameters: tuple[object, ...]) -> bool | None:
    """For a screen's or widget's ``check_action``: None greys out the key of a disabled action."""
    return None if disabled_reason(app, acted(action, parameters)) is not None else True


def binding_reason(app: App[Any], binding: Binding) -> str | None:
    """Why a binding's action is disabled, for the help screen (None when it is not gated)."""
    _namespace, action, parameters = parse_action(binding.action)
    return disabled_reason(app, acted(action, parameters))


def refuse_disabled_key(screen: Screen[Any], event: events.Key) -> None:
    """A key bound to a disabled action (on the screen or its focused widget): say why."""
    active = screen.active_bindings.get(event.key)
    if active is None or active.enabled:
        return
    _namespace, action, parameters = parse_action(active.binding.action)
    spec = acted(action, parameters)
    reason = disabled_reason(screen.app, spec)
    if spec is not None and reason is not None:
        event.stop()
        notify_disabled(screen.app, spec, reason)
