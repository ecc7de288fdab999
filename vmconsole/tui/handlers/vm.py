"""Handlers of the VM lifecycle: start, stop, enable, disable, cleanup, remove, console, create,
clone and update in place. Each calls its ``vmconsole.core.vms`` function through the module, when
it runs."""

from __future__ import annotations

import subprocess
from functools import partial
from typing import Any

from rich.text import Text
from textual.app import App

from vmconsole.core import vms
from vmconsole.core.vms import CloneSpec, CreateSpec, UpdatePlan
from vmconsole.domain.errors import VmConsoleError
from vmconsole.domain.model import VmState
from vmconsole.tui import ops, text
from vmconsole.tui.console import console_of
from vmconsole.tui.handlers.base import ConfirmTask, Request, confirm_task
from vmconsole.tui.screens.clone import CloneScreen
from vmconsole.tui.screens.config_view import ConfigScreen
from vmconsole.tui.screens.create import CreateScreen
from vmconsole.tui.screens.update import UpdateScreen
from vmconsole.tui.screens.update_diff import UpdateDiffScreen
from vmconsole.tui.task_record import TaskRecord, TaskState


def _stop_body(vm: VmState, *, force: bool) -> Text:
    body = Text.assemble(
        "Stop ",
        text.where(vm),
        "?\n\n",
        "The guest is shut down; its services are unavailable until it is started again.",
    )
    if force:
        body.append(
            "\nIf it does not stop in time it is forced off (like pulling the plug): unsaved data in "
            "the guest is lost.",
            style="bold red",
        )
    return body


STOP = ConfirmTask[VmState](
    title=lambda vm: f"Stop {text.safe(vm.name)}",
    body=lambda console, vm: _stop_body(vm, force=False),
    confirm="Stop",
    task=lambda vm: f"stop {vm.name}",
    vm=lambda vm: vm.name,
    plan=lambda services, vm: vms.plan_stop(services, vm.name, force=False),
)

FORCE_STOP = ConfirmTask[VmState](
    title=lambda vm: f"Force stop {text.safe(vm.name)}",
    body=lambda console, vm: _stop_body(vm, force=True),
    confirm="Force stop",
    task=lambda vm: f"force stop {vm.name}",
    vm=lambda vm: vm.name,
    plan=lambda services, vm: vms.plan_stop(services, vm.name, force=True),
)

DISABLE = ConfirmTask[VmState](
    title=lambda vm: f"Disable {text.safe(vm.name)}",
    body=lambda console, vm: Text.assemble(
        "Disable ",
        text.where(vm),
        "?\n\n",
        "Its Pacemaker primitive is removed: the cluster stops it"
        " and will no longer start, watch or move it.\nIts disks, snapshots and"
        " configuration stay; enable it again with e.",
    ),
    confirm="Disable",
    task=lambda vm: f"disable {vm.name}",
    vm=lambda vm: vm.name,
    plan=lambda services, vm: vms.plan_disable(services, vm.name),
)


def _remove_body(vm: VmState) -> Text:
    body = Text.assemble("Remove ", text.where(vm), " for good?\n\n")
    if vm.enabled:
        body.append("It is stopped and removed from the cluster, then ")
    body.append(
        f"its {len(vm.disks)} disk{'s' if len(vm.disks) != 1 else ''} ({text.size(vm.total_size)}), "
        f"its {len(vm.snapshots)} snapshot{'s' if len(vm.snapshots) != 1 else ''} and its configuration"
        " are deleted.\n"
    )
    body.append("This cannot be undone.", style="bold red")
    return body


REMOVE = ConfirmTask[VmState](
    title=lambda vm: f"Remove {text.safe(vm.name)}",
    body=lambda console, vm: _remove_body(vm),
    confirm="Remove",
    task=lambda vm: f"remove {vm.name}",
    vm=lambda vm: vm.name,
    plan=lambda services, vm: vms.plan_remove(services, vm.name),
    typed=lambda vm: vm.name,
)


def start(request: Request) -> None:
    name = request.vm.name
    request.console.start_task(f"start {name}", name, lambda s: vms.plan_start(s, name))


def stop(request: Request) -> None:
    confirm_task(request.app, STOP, request.vm)


def force_stop(request: Request) -> None:
    confirm_task(request.app, FORCE_STOP, request.vm)


def enable(request: Request) -> None:
    name = request.vm.name
    request.console.start_task(f"enable {name}", name, lambda s: vms.plan_enable(s, name))


def disable(request: Request) -> None:
    confirm_task(request.app, DISABLE, request.vm)


def cleanup(request: Request) -> None:
    name = request.vm.name
    request.console.start_task(f"cleanup {name}", name, lambda s: vms.plan_cleanup(s, name))


def remove(request: Request) -> None:
    confirm_task(request.app, REMOVE, request.vm)


# ---------------------------------------------------------------------------------------------- serial console
def serial_console(request: Request) -> None:
    name = request.vm.name
    app = request.app
    request.console.call_in_thread(
        lambda: vms.console_argv(console_of(app).services, name),
        partial(attach_console, app, name),
        f"find the console of {name}",
    )


def attach_console(app: App[Any], vm: str, argv: list[str]) -> None:
    """Hand the terminal to ``virsh console`` (an argv, never a shell), then take it back."""
    try:
        with app.suspend():
            print(f"Attaching to the console of {text.safe(vm)}; leave with ctrl+]", flush=True)
            subprocess.run(argv, check=False)
    except Exception as exc:  # SuspendNotSupported, OSError: reported, never fatal
        console_of(app).show_error(VmConsoleError(f"cannot attach to the console: {exc}", hint=" ".join(argv)))
    app.refresh()


# ---------------------------------------------------------------------------------------------- create and clone
def create(request: Request) -> None:
    console = request.console

    def chosen(spec: CreateSpec | None) -> None:
        if spec is not None:
            console.start_task(f"create {spec.name}", spec.name, lambda s: vms.plan_create(s, spec))

    request.app.push_screen(CreateScreen(), chosen)


def clone(request: Request) -> None:
    console = request.console

    def chosen(spec: CloneSpec | None) -> None:
        if spec is not None:
            kind = "linked clone" if spec.linked else "clone"
            console.start_task(f"{kind} {spec.source} → {spec.name}", spec.name, lambda s: vms.plan_clone(s, spec))

    request.app.push_screen(CloneScreen(request.vm), chosen)


# ---------------------------------------------------------------------------------------------- update in place
def update(request: Request) -> None:
    app = request.app
    state = request.console.state

    def planned(plan: UpdatePlan | None) -> None:
        if plan is not None:
            show_update_diff(app, plan)

    app.push_screen(UpdateScreen(request.vm, state.nodes if state is not None else ()), planned)


def show_update_diff(app: App[Any], plan: UpdatePlan) -> None:
    """The planned update's summary and XML diff; on yes, the update task."""

    def confirmed(yes: bool | None) -> None:
        if yes:
            vm = plan.vm
            console_of(app).start_task(
                f"update {vm}", vm, lambda s: vms.plan_update(s, plan), on_finish=partial(reread_config, app)
            )

    app.push_screen(UpdateDiffScreen(plan), confirmed)


def reread_config(app: App[Any], record: TaskRecord) -> None:
    """After an update, an open XML view of the VM shows the new definition."""
    vm = record.vm
    views = [s for s in app.screen_stack if isinstance(s, ConfigScreen) and s.config.vm == vm]
    if record.state is not TaskState.DONE or vm is None or not views:
        return

    def show(config: ops.DomainConfig) -> None:
        for view in views:
            view.show_config(config)

    console = console_of(app)
    console.call_in_thread(lambda: ops.read_domain_config(console.services, vm), show, f"read the XML of {vm}")
