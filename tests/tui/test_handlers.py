"""The one handler table: every action ``perform`` can receive has exactly one handler, and every
handler exactly one action; every binding that runs an action spells it ``act('name')``."""

from __future__ import annotations

from typing import Any

from textual.actions import parse as parse_action
from textual.binding import Binding
from tui_helpers import drive

from vmconsole.tui import actions, gating
from vmconsole.tui.handlers import HANDLERS
from vmconsole.tui.handlers.base import Request
from vmconsole.tui.screens.config_view import ConfigScreen
from vmconsole.tui.screens.main import MainScreen
from vmconsole.tui.screens.vm_detail import VmDetailScreen
from vmconsole.tui.widgets.cluster_pane import ClusterPane
from vmconsole.tui.widgets.snapshot_pane import SnapshotPane

# every spec ``perform`` can receive: the table's lists, and what the snapshot pane offers on its row
PERFORMABLE: tuple[actions.ActionSpec, ...] = (
    *actions.VM_ACTIONS,
    *actions.GLOBAL_ACTIONS,
    *actions.NODE_ACTIONS,
    actions.SNAPSHOT_REMOVE,
    actions.SNAPSHOT_PROTECT,
    *actions.FOLLOW_UPS,
)


def test_every_action_has_exactly_one_handler_and_every_handler_one_action() -> None:
    names = [spec.name for spec in PERFORMABLE]
    assert len(set(names)) == len(names)  # no action declared twice
    assert {spec.name for spec in actions.BY_NAME.values()} == set(names)  # names and aliases resolve to these
    assert set(HANDLERS) == set(names)  # each action a handler, no handler without its action
    handlers = list(HANDLERS.values())
    assert len({id(handler) for handler in handlers}) == len(handlers)  # no handler serves two actions
    for spec in (actions.METADATA_SET, actions.RECOVERY_UNDO):  # gated buttons of their screens, not actions
        assert spec.name not in actions.BY_NAME and spec.name not in HANDLERS


def test_every_action_binding_says_act_and_names_an_action() -> None:
    components: list[Any] = [MainScreen, VmDetailScreen, ConfigScreen, SnapshotPane, ClusterPane]
    acted: list[str] = []
    for component in components:
        for binding in component.BINDINGS:
            assert isinstance(binding, Binding)
            _namespace, verb, parameters = parse_action(binding.action)
            named = [str(p) for p in parameters if str(p) in actions.BY_NAME]
            if named or verb == gating.VERB:
                assert verb == gating.VERB, binding
                assert named and named[0] in HANDLERS, binding
                acted.append(binding.id or "")
    assert {"vm.start", "detail.metadata", "config.update", "snap.rollback", "node.standby"} <= set(acted)


def test_perform_dispatches_through_the_table(make_app: Any, monkeypatch: Any) -> None:
    app = make_app()
    calls: list[tuple[str, Request]] = []
    monkeypatch.setitem(HANDLERS, "start", lambda request: calls.append(("start", request)))
    monkeypatch.setitem(HANDLERS, "snapshot", lambda request: calls.append(("snapshot", request)))
    monkeypatch.setitem(HANDLERS, "online", lambda request: calls.append(("online", request)))

    async def scenario(pilot: Any) -> None:
        app.perform("start", "web1")
        app.perform("snap", "db1", snapshot="nightly")  # an alias, with its snapshot
        app.perform("online", node="hv3")
        await pilot.pause()
        assert [name for name, _request in calls] == ["start", "snapshot", "online"]
        assert calls[0][1].vm.name == "web1" and calls[0][1].app is app
        assert calls[1][1].vm.name == "db1" and calls[1][1].snapshot == "nightly"
        assert calls[2][1].node.name == "hv3"

    drive(app, scenario)
