"""What the console gained from the CLI: colocation, pacemaker-remote, flatten, retention policy and
prune, lock show/break, each through its core service call with its confirmation."""

from __future__ import annotations

from typing import Any

import tui_sample
from textual.widgets import Button, Checkbox, Input
from tui_helpers import drive, settle, shown

from vmconsole.core import recovery, snapshots, vms
from vmconsole.core.snapshots import PurgePlan, RetentionPolicy
from vmconsole.tui.screens.colocation import ColocationScreen
from vmconsole.tui.screens.confirm import ConfirmModal
from vmconsole.tui.screens.lock import LockScreen
from vmconsole.tui.screens.main import MainScreen
from vmconsole.tui.screens.remote import RemoteScreen
from vmconsole.tui.screens.retention import RetentionScreen
from vmconsole.tui.task_record import TaskState
from vmconsole.tui.widgets.vm_table import VmTable


def table(app: Any) -> VmTable:
    return app.screen.query_one(VmTable)


def test_colocation_checks_the_resources_and_runs_inline(make_app: Any, fake_services: Any, monkeypatch: Any) -> None:
    calls: list[tuple[str, list[str], bool]] = []
    monkeypatch.setattr(
        vms,
        "plan_colocate",
        lambda s, vm, resources, strong=False: (
            calls.append((vm, list(resources), strong)) or tui_sample.fake_task("colocate", vm, 2)
        ),
    )
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        table(app).move_to("web1")
        await pilot.press("W")
        await pilot.pause()
        form = app.screen
        assert isinstance(form, ColocationScreen)
        box = form.query_one("#colocate-resources", Input)
        box.value = "db1 bad/name"
        await pilot.pause()
        assert "'bad/name' is not a resource name" in shown(form.query_one("#colocate-error"))
        box.value = "web1"
        await pilot.pause()
        assert "cannot be colocated with itself" in shown(form.query_one("#colocate-error"))
        box.value = "db1 cache1"
        form.query_one("#colocate-strong", Checkbox).value = True
        await pilot.pause()
        await pilot.click("#ok")
        await settle(pilot, app)
        modal = app.screen
        assert isinstance(modal, ConfirmModal) and "strong: score INFINITY" in modal.body.plain
        assert "step 1 of colocate" in modal.body.plain  # the service's plan
        await pilot.press("y")
        await settle(pilot, app)
        assert calls == [("web1", ["db1", "cache1"], True)]
        assert app.tasks[-1].state is TaskState.DONE and isinstance(app.screen, MainScreen)  # inline

    drive(app, scenario)


def test_a_colocation_is_removed_from_its_form(
    make_app: Any, fake_services: Any, monkeypatch: Any, source: Any
) -> None:
    from dataclasses import replace
    from types import MappingProxyType

    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(
        vms,
        "plan_uncolocate",
        lambda s, vm, resources: calls.append((vm, list(resources))) or tui_sample.fake_task("uncolocate", vm, 2),
    )
    kept = {"colocations": [{"resources": ["db1"], "strong": True}]}
    source.current = replace(
        source.current,
        vms=tuple(
            replace(vm, settings=MappingProxyType(kept)) if vm.name == "web1" else vm for vm in source.current.vms
        ),
    )
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        table(app).move_to("web1")
        await pilot.press("W")
        await pilot.pause()
        form = app.screen
        assert isinstance(form, ColocationScreen)
        await pilot.click("#remove")  # the field is empty: the VM's only colocation
        await settle(pilot, app)
        modal = app.screen
        assert isinstance(modal, ConfirmModal) and "Stop keeping" in modal.body.plain and "db1" in modal.body.plain
        await pilot.press("y")
        await settle(pilot, app)
        assert calls == [("web1", ["db1"])]
        assert app.tasks[-1].state is TaskState.DONE and isinstance(app.screen, MainScreen)

    drive(app, scenario)


def test_pacemaker_remote_add_and_remove(make_app: Any, fake_services: Any, monkeypatch: Any, source: Any) -> None:
    from dataclasses import replace
    from types import MappingProxyType

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(
        vms,
        "plan_remote",
        lambda s, vm, **kw: calls.append({"vm": vm, **kw}) or tui_sample.fake_task("remote", vm, 2),
    )
    carrying = {"remote_node": "guest1", "remote_node_address": "10.0.0.5"}
    source.current = replace(
        source.current,
        vms=tuple(
            replace(vm, settings=MappingProxyType(carrying)) if vm.name == "db1" else vm for vm in source.current.vms
        ),
    )
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        table(app).move_to("web1")
        await pilot.press("Z")
        await pilot.pause()
        form = app.screen
        assert isinstance(form, RemoteScreen) and form.query_one("#remove", Button).disabled  # it carries none
        form.query_one("#remote-remote_name", Input).value = "guest-1"
        form.query_one("#remote-remote_port", Input).value = "31x"
        await pilot.pause()
        assert "the VM name contains '-'" in shown(form.query_one("#remote-remote_name-error"))
        assert "'31x' is not a whole number >= 0" in shown(form.query_one("#remote-remote_port-error"))
        assert "give the remote node's address" in shown(form.query_one("#remote-remote_address-error"))
        form.query_one("#remote-remote_name", Input).value = "guest2"
        form.query_one("#remote-remote_address", Input).value = "10.0.0.9"
        form.query_one("#remote-remote_port", Input).value = "3121"
        await pilot.pause()
        await pilot.click("#ok")
        await settle(pilot, app)
        await pilot.press("y")
        await settle(pilot, app)
        assert calls[-1] == {
            "vm": "web1",
            "remote_name": "guest2",
            "address": "10.0.0.9",
            "port": "3121",
            "timeout": None,
        }
        table(app).move_to("db1")
        await pilot.press("Z")
        await pilot.pause()
        form = app.screen
        assert isinstance(form, RemoteScreen) and "guest1 at 10.0.0.5" in shown(form.query(".form-note").first())
        await pilot.click("#remove")
        await settle(pilot, app)
        modal = app.screen
        assert isinstance(modal, ConfirmModal) and "leaves the cluster" in modal.body.plain
        await pilot.press("y")
        await settle(pilot, app)
        assert calls[-1] == {"vm": "db1", "remote_name": None}

    drive(app, scenario)


def test_flatten_asks_then_shows_its_progress(make_app: Any, fake_services: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(vms, "plan_flatten", lambda s, vm: tui_sample.fake_task("flatten", vm, 1, total=1024))
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        table(app).move_to("web2")
        await pilot.press("f")
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, ConfirmModal) and "its own copy" in modal.body.plain
        await pilot.press("y")
        await settle(pilot, app)
        assert fake_services.ran == ["flatten"] and app.tasks[-1].state is TaskState.DONE

    drive(app, scenario)


def test_retention_policy_is_saved_and_its_prune_previewed_before_the_typed_name(
    make_app: Any, fake_services: Any, monkeypatch: Any
) -> None:
    saved: list[tuple[str, RetentionPolicy]] = []
    policies = {"db1": RetentionPolicy(keep_last=2, keep_daily=0)}
    monkeypatch.setattr(snapshots, "policies", lambda s: dict(policies))
    monkeypatch.setattr(snapshots, "set_policy", lambda s, vm, p: saved.append((vm, p)))
    snaps = tui_sample.db1_snapshots()

    def prune_plan(s: Any, vm: str, policy: RetentionPolicy, now: Any = None) -> PurgePlan:
        return PurgePlan(vm, (snaps[1],), ((snaps[0], "protected"), (snaps[2], "one of the last 1")), "policy")

    purged: list[PurgePlan] = []
    monkeypatch.setattr(snapshots, "prune_plan", prune_plan)
    monkeypatch.setattr(
        snapshots, "plan_purge", lambda s, plan: purged.append(plan) or tui_sample.fake_task("snapshot-purge", plan.vm)
    )
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        table(app).move_to("db1")
        await pilot.press("K")
        await settle(pilot, app)
        form = app.screen
        assert isinstance(form, RetentionScreen)
        assert "keep the last 2" in shown(form.query_one("#retention-now"))
        assert form.query_one("#keep-last", Input).value == "2"
        form.query_one("#keep-last", Input).value = "x"
        await pilot.pause()
        assert "'x' is not a whole number >= 0" in shown(form.query_one("#retention-error"))
        form.query_one("#keep-last", Input).value = "1"
        form.query_one("#keep-daily", Input).value = "7"
        await pilot.pause()  # the error line goes: the buttons move up
        await pilot.click("#save")
        await settle(pilot, app)
        assert saved == [("db1", RetentionPolicy(1, 7))]
        await pilot.click("#prune-preview")
        await settle(pilot, app)
        assert "1 to remove, 2 kept" in shown(form.query_one("#retention-summary"))
        assert form.query_one("#ok", Button).disabled
        form.query_one("#typed", Input).value = "db1"
        await pilot.pause()
        await pilot.click("#ok")
        await settle(pilot, app)
        assert [p.vm for p in purged] == ["db1"] and app.tasks[-1].state is TaskState.DONE

    drive(app, scenario, size=(120, 40))


def test_prune_every_policy_shows_the_dry_run_and_needs_the_count(
    make_app: Any, fake_services: Any, monkeypatch: Any
) -> None:
    snaps = tui_sample.db1_snapshots()
    monkeypatch.setattr(snapshots, "policies", lambda s: {"db1": RetentionPolicy(1, 0), "web1": RetentionPolicy(5, 0)})
    monkeypatch.setattr(
        snapshots,
        "prune_plan",
        lambda s, vm, p, now=None: PurgePlan(vm, snaps[:2] if vm == "db1" else (), (), f"keep-last {p.keep_last}"),
    )
    ran: list[list[str]] = []
    monkeypatch.setattr(
        snapshots,
        "plan_purge_many",
        lambda s, plans: ran.append([p.vm for p in plans]) or tui_sample.fake_task("snapshot-purge", None),
    )
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        await pilot.press("B")
        await settle(pilot, app)
        modal = app.screen
        assert isinstance(modal, ConfirmModal) and modal.typed == "2"
        assert (
            "db1: keep-last 1: 2 to remove" in modal.body.plain and "web1: keep-last 5: 0 to remove" in modal.body.plain
        )
        modal.query_one("#typed", Input).value = "2"
        await pilot.press("enter")
        await settle(pilot, app)
        assert ran == [["db1"]]  # only the VMs with something to remove

    drive(app, scenario, size=(120, 40))


def test_lock_show_and_break_with_the_typed_name(make_app: Any, fake_services: Any, monkeypatch: Any) -> None:
    held = {
        "vm": "db1",
        "locked": True,
        "holder": {
            "holder": "ops@elsewhere",
            "operation": "clone",
            "task": "t9",
            "since": "2026-05-04T11:00",
            "pid": 42,
        },
        "lockers": [],
        "holder_alive": None,
    }
    status = dict(held)
    monkeypatch.setattr(recovery, "lock_status", lambda s, vm: dict(status))
    broke: list[tuple[str, bool]] = []

    def break_lock(s: Any, vm: str, *, force: bool = False) -> list[str]:
        broke.append((vm, force))
        status.update(locked=False, holder=None)
        return ["client.4242 (vmconsole, task t9)"]

    monkeypatch.setattr(recovery, "break_lock", break_lock)
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        table(app).move_to("db1")
        await pilot.press("L")
        await settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, LockScreen)
        text = shown(screen.query_one("#lock-status"))
        assert "ops@elsewhere" in text and "clone (task t9)" in text and "unknown" in text
        force = screen.query_one("#lock-force", Checkbox)
        assert force.display  # the holder is on another host
        force.value = True
        await pilot.click("#break")
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, ConfirmModal) and modal.typed == "db1"
        modal.query_one("#typed", Input).value = "db1"
        await pilot.press("enter")
        await settle(pilot, app)
        assert broke == [("db1", True)]
        assert "free" in shown(screen.query_one("#lock-status"))
        assert any(e.action == "lock-break" and e.vm == "db1" for e in app.events.entries)  # on the timeline

    drive(app, scenario)


def test_read_only_keeps_the_new_screens_from_changing_anything(make_app: Any, fake_services: Any) -> None:
    app = make_app(read_only=True, services=fake_services)

    async def scenario(pilot: Any) -> None:
        table(app).move_to("db1")
        for key in ("W", "Z", "f", "I", "B"):
            await pilot.press(key)
            await pilot.pause()
            assert isinstance(app.screen, MainScreen), key
        notes = [n.message for n in app._notifications]
        assert sum("is disabled: read-only mode" in m for m in notes) == 5

    drive(app, scenario)
