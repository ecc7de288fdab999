"""Read-only gating for the views whose keys run console actions by name (``open('move')``).

The main screen gates its ``op(...)`` bindings itself; the detail and XML views call these two: in
read-only mode a mutating action's key is greyed out in the footer and the help (``check_action``
answers None), and pressing it says why instead of doing nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from textual import events
from textual.actions import parse as parse_action
from textual.screen import Screen

from vmconsole.tui.actions import BY_NAME, ActionSpec

if TYPE_CHECKING:
    from vmconsole.tui.app import VmConsoleApp


def gated_reason(
    app: VmConsoleApp, action: str, parameters: tuple[object, ...], gated: str = "open"
) -> tuple[ActionSpec, str] | None:
    """The action run by a ``gated('name')`` binding and why it is disabled, or None when it is not."""
    if action != gated or not parameters:
        return None
    spec = BY_NAME.get(str(parameters[0]))
    reason = app.disabled_reason(spec) if spec is not None else None
    return (spec, reason) if spec is not None and reason is not None else None


def refuse_disabled_key(screen: Screen[Any], event: events.Key, gated: str = "open") -> None:
    """A key bound to a disabled action: say why (the binding itself did nothing)."""
    active = screen.active_bindings.get(event.key)
    if active is None or active.enabled:
        return
    app = cast("VmConsoleApp", screen.app)
    _namespace, action, params = parse_action(active.binding.action)
    found = gated_reason(app, action, params, gated)
    if found is not None:
        event.stop()
        app.notify_disabled(*found)
