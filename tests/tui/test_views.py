"""Views and plumbing: detail, metadata, XML diff, history, recovery, console, palette, keymap, quit."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

import tui_sample
from textual.widgets import Input
from tui_helpers import drive, settle, shown

from vmconsole.core import recovery, vms
from vmconsole.domain.model import VmStatus
from vmconsole.tui import ops
from vmconsole.tui.provider import VmCommandProvider
from vmconsole.tui.screens.config_view import ConfigScreen
from vmconsole.tui.screens.history import HistoryScreen
from vmconsole.tui.screens.main import MainScreen
from vmconsole.tui.screens.metadata import MetadataScreen
from vmconsole.tui.screens.recovery import RecoveryScreen
from vmconsole.tui.screens.vm_detail import VmDetailScreen
from vmconsole.tui.task_record import TaskState
from vmconsole.tui.widgets.vm_table import VmTable

BASE = "<domain type='kvm'><name>db1</name><memory unit='MiB'>64</memory><devices/></domain>"
FINAL = (
    "<domain type='kvm'><name>db1</name><uuid>4f8a7c52-1111-4222-8333-444455556666</uuid>"
    "<memory unit='MiB'>64</memory><devices><disk type='network' device='disk'>"
    "<source protocol='rbd' name='rbd/system_db1'/><target dev='vda' bus='virtio'/></disk></devices></domain>"
)


def test_detail_follows_refreshes_and_metadata_edits(
    make_app: Any, fake_services: Any, source: Any, monkeypatch: Any
) -> None:
    from types import MappingProxyType

    from vmconsole.core import diagnose
    from vmconsole.domain.pacemaker_status import OperationHistoryEntry

    monkeypatch.setattr(vms, "metadata_list", lambda s, vm: {"owner": "dba-team", "tier": "gold"})
    history = OperationHistoryEntry(
        "hv1",
        MappingProxyType({"task": "start", "rc": "1", "rc_text": "error", "last-rc-change": "2026-05-04 11:53:00"}),
    )
    monkeypatch.setattr(
        diagnose,
        "diagnose",
        lambda s, vm: diagnose.Diagnosis(
            vm=vm,
            status=VmStatus.FAILED,
            node=None,
            enabled=True,
            target_role=None,
            managed=True,
            blocked=False,
            fail_count=1,
            failures=(),
            operations=(history,),
            problems=(),
            libvirt_host="hv1",
            libvirt_answered=True,
            libvirt_state="shut off",
            qemu_log=("qemu: \x1b[31mboom",),
        ),
    )
    written: list[Any] = []
    monkeypatch.setattr(
        vms,
        "plan_metadata_set",
        lambda s, vm, values, remove=(): (
            written.append((values, remove)) or tui_sample.fake_task("metadata-set", vm, 1)
        ),
    )
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        app.screen.query_one(VmTable).move_to("db1")
        await pilot.press("enter")
        await pilot.pause()
        detail = app.screen
        assert isinstance(detail, VmDetailScreen)
        text = "\n".join(shown(s) for s in detail.query(".section"))
        assert "system_db1" in text and "before-upgrade" in text and "dba-team" in text
        source.current = replace(
            source.current,
            vms=tuple(
                replace(vm, status=VmStatus.STOPPED, node=None) if vm.name == "db1" else vm for vm in source.current.vms
            ),
        )
        app.refresh_now()
        await settle(pilot, app)
        assert "Stopped" in shown(detail.query(".section").first())
        await pilot.press("d")  # the diagnosis, from core
        await settle(pilot, app)
        diagnosis = shown(detail.query(".section").last())
        assert "start rc=1 (error)" in diagnosis and "\\x1b[31mboom" in diagnosis and "\x1b" not in diagnosis
        await pilot.press("m")  # metadata, from the detail view
        await settle(pilot, app)
        meta = app.screen
        assert isinstance(meta, MetadataScreen) and meta.values == {"owner": "dba-team", "tier": "gold"}
        meta.query_one("#meta-key", Input).value = "site"
        meta.query_one("#meta-value", Input).value = "[red]north[/] \x1b[1m"
        await pilot.click("#set")
        await settle(pilot, app)
        assert written == [({"site": "[red]north[/] \x1b[1m"}, ())]
        meta.query_one("#meta-key", Input).value = "tier"
        await pilot.press("delete")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot, app)
        assert written[-1] == ({}, ["tier"])

    drive(app, scenario)


def test_config_diff_history_and_recovery(make_app: Any, fake_services: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(ops, "read_domain_config", lambda s, vm: ops.DomainConfig(vm, FINAL, BASE))
    monkeypatch.setattr(
        fake_services,
        "history",
        lambda: [
            {
                "task": "a1",
                "operation": "snapshot-create",
                "vm": "db1",
                "who": "ops@hv1",
                "result": "ok",
                "finished": "2026-05-04T11:00:02+00:00",
                "seconds": 1.2,
                "message": "snapshot db1 as nightly",
            },
            {
                "task": "a2",
                "operation": "start",
                "vm": "legacy",
                "who": "ops@hv1",
                "result": "failed",
                "finished": "2026-05-04T11:53:00+00:00",
                "seconds": 150.0,
                "message": "legacy is Failed",
            },
        ],
    )
    entries = [
        {
            "task": "dead01",
            "operation": "clone",
            "vm": "web9",
            "holder": "ops@hv2",
            "state": "running",
            "started": "2026-05-04T10:00:00+00:00",
            "steps": ["create RBD group web9", "copy"],
            "done": ["create RBD group web9"],
        }
    ]
    monkeypatch.setattr(recovery, "incomplete_tasks", lambda s: list(entries))
    undone: list[str] = []
    monkeypatch.setattr(recovery, "undo_task", lambda s, task: undone.append(task) or {"message": f"{task} undone"})
    app = make_app(services=fake_services, check_recovery=True)

    async def scenario(pilot: Any) -> None:
        await settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, RecoveryScreen)  # found at start
        assert "create RBD group web9" in shown(screen.query_one("#recovery-detail"))
        await pilot.click("#undo")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot, app)
        assert undone == ["dead01"] and isinstance(app.screen, MainScreen)
        app.screen.query_one(VmTable).move_to("db1")
        await pilot.press("v")
        await settle(pilot, app)
        config = app.screen
        assert isinstance(config, ConfigScreen)
        diff = config.query(".xml-view Static").first().content.code  # type: ignore[attr-defined]
        assert "--- _base_xml" in diff and "+++ xml" in diff and "+  <uuid>" in diff
        await pilot.press("escape", "H")
        await settle(pilot, app)
        history = app.screen
        assert isinstance(history, HistoryScreen)
        assert history.query_one("#history-table").row_count == 2  # type: ignore[attr-defined]

    drive(app, scenario)


def test_console_attach_failure_is_reported_not_fatal(make_app: Any, fake_services: Any, monkeypatch: Any) -> None:
    from vmconsole.domain.errors import ConflictError

    def argv(s: Any, vm: str) -> list[str]:
        if vm == "spare1":
            raise ConflictError("spare1 is Stopped: it has no console now")
        return ["virsh", "-c", "qemu+ssh://libvirtadmin@hv1/system", "console", vm]

    monkeypatch.setattr(vms, "console_argv", argv)
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        app.perform("console", "spare1")  # core says why there is no console
        app.perform("console", "web1")  # headless: suspend is not supported
        await settle(pilot, app)
        messages = [n.message for n in app._notifications]
        assert any("spare1 is Stopped: it has no console now" in m for m in messages)
        wanted = "virsh -c qemu+ssh://libvirtadmin@hv1/system console web1"
        assert any("cannot attach to the console" in m and wanted in m for m in messages)

    drive(app, scenario)


def test_palette_lists_every_action_for_the_cursor_vm(make_app: Any) -> None:
    app = make_app(read_only=True)

    async def scenario(pilot: Any) -> None:
        app.screen.query_one(VmTable).move_to("db1")
        provider = VmCommandProvider(app.screen)
        texts = [c.text for c in provider.commands()]
        assert "Rollback: db1 (read-only)" in texts and "Detail: db1" in texts and "Go to VM legacy" in texts
        hits = [hit async for hit in provider.search("go legacy")]
        assert hits
        hits[0].command()
        await pilot.pause()
        assert app.screen.query_one(VmTable).current_vm == "legacy"

    drive(app, scenario)


def test_keymap_remaps_by_binding_id(make_app: Any, fake_services: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(vms, "plan_start", lambda s, vm: tui_sample.fake_task("start", vm, 1))
    app = make_app(services=fake_services, keymap={"vm.start": "S"})

    async def scenario(pilot: Any) -> None:
        app.screen.query_one(VmTable).move_to("spare1")
        await pilot.press("s")
        await pilot.pause()
        assert not app.tasks
        await pilot.press("S")
        await settle(pilot, app)
        assert app.tasks and app.tasks[0].state is TaskState.DONE

    drive(app, scenario)


def test_quit_with_a_running_task_cancels_it_first(make_app: Any, fake_services: Any, monkeypatch: Any) -> None:
    gate = threading.Event()
    monkeypatch.setattr(vms, "plan_start", lambda s, vm: tui_sample.fake_task("start", vm, 2, gate=gate))
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        app.perform("start", "spare1")
        await pilot.pause()
        await pilot.press("escape", "q")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot, app)

    drive(app, scenario)
    assert app.tasks[0].state is TaskState.CANCELLED and app.return_code == 0
