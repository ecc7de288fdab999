"""The create, clone and import forms: every CLI option, checked as typed with the CLI's messages, then
the service's plan (its steps and warnings) before anything is made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tui_sample
from textual.widgets import Button, Checkbox, Input, Select
from tui_helpers import drive, settle, shown

from vmconsole.core import vms
from vmconsole.core.tasks import Task
from vmconsole.core.vms import CloneSpec, CreateSpec, VmOptions
from vmconsole.tui.screens.clone import CloneScreen
from vmconsole.tui.screens.confirm import ConfirmModal
from vmconsole.tui.screens.create import CreateScreen
from vmconsole.tui.screens.import_vm import ImportScreen
from vmconsole.tui.screens.progress import TaskScreen
from vmconsole.tui.task_record import TaskState
from vmconsole.tui.widgets.vm_table import VmTable

XML = "<domain type='kvm'><name>web3</name><memory unit='MiB'>512</memory><devices/></domain>"


def planned(operation: str, vm: str, *, warnings: tuple[str, ...] = ()) -> Task:
    task = tui_sample.fake_task(operation, vm, 2)
    assert isinstance(task, Task)
    task.warnings = warnings
    return task


def error_of(screen: Any, field: str) -> str:
    widget = screen.query_one(f"#vs-{field}-error")
    return shown(widget).strip() if widget.display else ""


def test_create_form_takes_every_option_and_shows_the_plan_with_its_warnings(
    make_app: Any, fake_services: Any, monkeypatch: Any, tmp_path: Path
) -> None:
    image, data, xml = tmp_path / "debian.qcow2", tmp_path / "data.raw", tmp_path / "web3.xml"
    image.write_bytes(b"QFI\xfb")
    data.write_bytes(b"\0" * 512)
    xml.write_text(XML)
    specs: list[CreateSpec] = []

    def plan_create(services: Any, spec: CreateSpec) -> Task:
        specs.append(spec)
        return planned("create", spec.name, warnings=("the domain XML passes a host device to the guest (hostdev)",))

    monkeypatch.setattr(vms, "plan_create", plan_create)
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        await pilot.press("a")
        await pilot.pause()
        form = app.screen
        assert isinstance(form, CreateScreen)
        ok = form.query_one("#ok", Button)
        values = {
            "#create-name": "web1",  # exists: refused until Force is ticked
            "#create-image": str(image),
            "#create-xml": str(xml),
            "#create-data": str(data),
            "#create-uuid": "not-a-uuid",
            "#vs-stop-timeout": "forever",
            "#vs-priority": "high",
            "#vs-migration-downtime": "-5",
            "#vs-pacemaker-meta": "target-role=Started",
            "#vs-metadata": "_secret=1",
        }
        for selector, value in values.items():
            form.query_one(selector, Input).value = value
        await pilot.pause()
        assert ok.disabled
        assert "a VM named web1 already exists" in shown(form.query_one("#create-name-error"))
        assert "is not a UUID" in shown(form.query_one("#create-uuid-error"))
        # the CLI's own messages, from the same validators
        assert error_of(form, "stop-timeout") == "'forever' is not a timeout; write seconds such as 30, 30s, 2min or 1h"
        assert error_of(form, "priority") == "must be an integer, got 'high'"
        assert error_of(form, "migration-downtime") == "'-5' is not a whole number >= 0"
        assert (
            error_of(form, "pacemaker-meta")
            == "option 'target-role' is set by vmconsole itself and cannot be overridden"
        )
        assert "managed by vmconsole/vm_manager" in error_of(form, "metadata")
        form.query_one("#vs-force", Checkbox).value = True  # replace web1: its consequence is spelt out
        fixed = {
            "#create-uuid": "4f8a7c52-1111-4222-8333-444455556666",
            "#vs-stop-timeout": "2min",
            "#vs-priority": "5",
            "#vs-migration-downtime": "200",
            "#vs-migration-user": "migrator",
            "#vs-migrate-to-timeout": "300",
            "#vs-pacemaker-meta": "migration-threshold=3",
            "#vs-pacemaker-params": "force_stop=true",
            "#vs-pacemaker-utilization": "cpu=2 memory=512",
            "#vs-metadata": 'owner=ops note="two words"',
        }
        for selector, value in fixed.items():
            form.query_one(selector, Input).value = value
        form.query_one("#create-bus", Select).value = "scsi"
        form.query_one("#vs-pinned-host", Select).value = "hv2"
        form.query_one("#vs-live", Select).value = "on"
        form.query_one("#vs-start", Checkbox).value = False
        await pilot.pause()
        assert not ok.disabled, [w.render() for w in form.query(".field-error") if w.display]
        assert "An existing VM of this name is replaced" in shown(form.query_one("#vs-force-note"))
        await pilot.click("#ok")
        await settle(pilot, app)
        [spec] = specs
        assert spec.name == "web1" and spec.force and spec.disk_bus == "scsi" and spec.data_disks == (str(data),)
        assert spec.uuid == "4f8a7c52-1111-4222-8333-444455556666" and spec.xml == XML
        assert spec.options == VmOptions(
            pinned_host="hv2",
            live_migration=True,
            migration_user="migrator",
            stop_timeout="2min",
            migrate_to_timeout="300",
            migration_downtime="200",
            priority="5",
            pacemaker_meta={"migration-threshold": "3"},
            pacemaker_params={"force_stop": "true"},
            pacemaker_utilization={"cpu": "2", "memory": "512"},
            metadata={"owner": "ops", "note": "two words"},
            enable=True,
            start=False,
        )
        modal = app.screen
        assert isinstance(modal, ConfirmModal) and modal.typed == "web1"  # replacing: the name typed
        body = modal.body.plain
        assert "step 1 of create" in body and "⚠ the domain XML passes a host device to the guest (hostdev)" in body
        assert "is REPLACED" in body
        modal.query_one("#typed", Input).value = "web1"
        await pilot.press("enter")
        await settle(pilot, app)
        assert isinstance(app.screen, TaskScreen) and app.tasks[-1].state is TaskState.DONE
        assert fake_services.ran == ["create"]

    drive(app, scenario, size=(120, 40))


def test_clone_form_starts_from_the_source_settings_and_clears_what_is_edited(
    make_app: Any, fake_services: Any, monkeypatch: Any, source: tui_sample.Source
) -> None:
    from dataclasses import replace
    from types import MappingProxyType

    settings = {"pinned_host": "hv1", "pacemaker_params": {"force_stop": "true"}, "live_migration": False}
    source.current = replace(
        source.current,
        vms=tuple(
            replace(vm, settings=MappingProxyType(settings)) if vm.name == "db1" else vm for vm in source.current.vms
        ),
    )
    specs: list[CloneSpec] = []
    monkeypatch.setattr(vms, "plan_clone", lambda s, spec: specs.append(spec) or planned("clone", spec.name))
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        app.screen.query_one(VmTable).move_to("db1")
        await pilot.press("C")
        await pilot.pause()
        form = app.screen
        assert isinstance(form, CloneScreen)
        params = form.query_one("#vs-pacemaker-params", Input)
        assert params.value == "force_stop=true"  # the source's, shown to be edited
        pinned = form.query_one("#vs-pinned-host", Select)
        assert pinned.value == "\x00keep" and "the source's (hv1)" in str(pinned._options[0][0])
        form.query_one("#clone-name", Input).value = "db2"
        params.value = ""  # the clone drops the source's params
        await pilot.pause()
        await pilot.click("#ok")
        await settle(pilot, app)
        [spec] = specs
        assert spec.source == "db1" and spec.name == "db2" and not spec.force
        assert spec.clear_pacemaker_params and not spec.clear_pacemaker_meta
        assert spec.options.pacemaker_params == {} and spec.options.pinned_host is None  # kept: the source's
        assert isinstance(app.screen, ConfirmModal) and app.screen.typed is None
        await pilot.press("y")
        await settle(pilot, app)
        assert fake_services.ran == ["clone"]

    drive(app, scenario, size=(120, 40))


def test_import_a_libvirt_domain_with_a_new_name(make_app: Any, fake_services: Any, monkeypatch: Any) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    def plan_import(services: Any, domain: str, **kwargs: Any) -> Task:
        calls.append((domain, kwargs))
        return planned("import", kwargs.get("new_name") or domain)

    monkeypatch.setattr(vms, "plan_import", plan_import)
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        app.screen.run_command("import legacy-dom")  # the : line gives the domain
        await pilot.pause()
        form = app.screen
        assert isinstance(form, ImportScreen)
        assert form.query_one("#import-domain", Input).value == "legacy-dom"
        assert "the VM name contains '-'" in shown(form.query_one("#import-name-error"))  # needs a new name
        assert form.query_one("#ok", Button).disabled
        form.query_one("#import-name", Input).value = "web1"
        await pilot.pause()
        assert "a VM named web1 already exists" in shown(form.query_one("#import-name-error"))
        form.query_one("#import-name", Input).value = "legacy2"
        form.query_one("#vs-enable", Checkbox).value = False
        await pilot.pause()
        await pilot.click("#ok")
        await settle(pilot, app)
        [(domain, kwargs)] = calls
        assert domain == "legacy-dom" and kwargs["new_name"] == "legacy2" and kwargs["disk_bus"] == "virtio"
        assert kwargs["options"] == VmOptions(enable=False, start=False)
        modal = app.screen
        assert isinstance(modal, ConfirmModal) and "local libvirt definition is removed" in modal.body.plain
        await pilot.press("y")
        await settle(pilot, app)
        assert fake_services.ran == ["import"] and app.tasks[-1].title == "import legacy-dom as legacy2"

    drive(app, scenario, size=(120, 40))


def test_the_import_form_lists_this_hosts_domains_and_a_pick_fills_the_field(
    make_app: Any, fake_services: Any, monkeypatch: Any
) -> None:
    from textual.widgets import OptionList

    domains = [vms.LocalDomain("olddom", "shut off"), vms.LocalDomain("busy", "running")]
    monkeypatch.setattr(vms, "local_domains", lambda services: domains)
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        app.screen.run_command("import")
        await settle(pilot, app)
        form = app.screen
        assert isinstance(form, ImportScreen)
        assert "2 domain(s) outside the cluster, 1 shut off" in shown(form.query_one("#import-domains-note"))
        picker = form.query_one("#import-domains", OptionList)
        assert picker.display and picker.option_count == 2
        assert "busy  (running): shut it down to import it" in str(picker.get_option_at_index(1).prompt)
        assert picker.get_option_at_index(1).disabled and not picker.get_option_at_index(0).disabled
        picker.focus()
        picker.highlighted = 0
        await pilot.press("enter")
        await pilot.pause()
        assert form.query_one("#import-domain", Input).value == "olddom"
        assert form.focused is form.query_one("#import-name", Input)
        await pilot.pause()
        errors = [shown(form.query_one(f"#{w}")) for w in ("import-domain-error", "import-name-error")]
        assert not form.query_one("#ok", Button).disabled, errors

    drive(app, scenario, size=(120, 40))


def test_the_import_form_says_when_the_domains_cannot_be_listed(
    make_app: Any, fake_services: Any, monkeypatch: Any
) -> None:
    from vmconsole.domain.errors import BackendError

    def unreachable(services: Any) -> list[Any]:
        raise BackendError("libvirt", "connecting to qemu:///system: no answer")

    monkeypatch.setattr(vms, "local_domains", unreachable)
    app = make_app(services=fake_services)

    async def scenario(pilot: Any) -> None:
        app.screen.run_command("import legacy")
        await settle(pilot, app)
        form = app.screen
        assert isinstance(form, ImportScreen)
        note = shown(form.query_one("#import-domains-note"))
        assert "could not be listed" in note and "no answer" in note
        assert form.query_one("#import-domain", Input).value == "legacy"  # typing still works

    drive(app, scenario, size=(120, 40))
