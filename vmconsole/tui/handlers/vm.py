"""Handlers of the VM lifecycle: start, stop, enable, disable, cleanup, remove, console, create,
clone, import, flatten and update in place. Each calls its ``vmconsole.core.vms`` function through
the module, when it runs.

Start, stop, enable, disable and cleanup are one-step actions: they run inline (progress on the VM's
row, a notification at the end) and a no-op (starting a Started VM) says so without any task.
"""

from __future__ import annotations

import subprocess
import time
from functools import partial
from typing import Any

from rich.text import Text
from textual.app import App

from vmconsole.core import vms
from vmconsole.core.tasks import Task
from vmconsole.core.vms import CloneSpec, CreateSpec, UpdatePlan
from vmconsole.domain.errors import VmConsoleError
from vmconsole.domain.model import VmState, VmStatus
from vmconsole.tui import ops, text
from vmconsole.tui.console import console_of
from vmconsole.tui.handlers.base import ConfirmTask, PlanConfirmation, Request, confirm_plan, confirm_task
from vmconsole.tui.memory import KeptFailure
from vmconsole.tui.screens.clone import CloneScreen
from vmconsole.tui.screens.config_view import ConfigScreen
from vmconsole.tui.screens.create import CreateScreen
from vmconsole.tui.screens.import_vm import ImportScreen, ImportSpec
from vmconsole.tui.screens.update import UpdateScreen
from vmconsole.tui.screens.update_diff import UpdateDiffScreen
from vmconsole.tui.task_record import TaskRecord, TaskState

CLEANUP_SETTLE = 3.0  # seconds Pacemaker gets to re-probe a cleaned-up VM before the console asks it again


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
    show=False,
)

FORCE_STOP = ConfirmTask[VmState](
    title=lambda vm: f"Force stop {text.safe(vm.name)}",
    body=lambda console, vm: _stop_body(vm, force=True),
    confirm="Force stop",
    task=lambda vm: f"force stop {vm.name}",
    vm=lambda vm: vm.name,
    plan=lambda services, vm: vms.plan_stop(services, vm.name, force=True),
    show=False,
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
    show=False,
)


def _enable_body(vm: VmState) -> Text:
    body = Text.assemble("Enable ", text.where(vm), "?\n\n")
    body.append(
        "Its Pacemaker primitive is added (with its placement and colocations) and Pacemaker starts it"
        " on a node it chooses; from then on the cluster watches it, restarts it and moves it."
    )
    pinned = vm.settings.get("pinned_host")
    preferred = vm.settings.get("preferred_host")
    if pinned:
        body.append("\nIt is pinned to ")
        body.append(text.plain(pinned, "bold"))
        body.append(".")
    elif preferred:
        body.append("\nIt prefers ")
        body.append(text.plain(preferred, "bold"))
        body.append(".")
    return body


ENABLE = ConfirmTask[VmState](
    title=lambda vm: f"Enable {text.safe(vm.name)}",
    body=lambda console, vm: _enable_body(vm),
    confirm="Enable and start",
    task=lambda vm: f"enable {vm.name}",
    vm=lambda vm: vm.name,
    plan=lambda services, vm: vms.plan_enable(services, vm.name),
    danger=False,
    show=False,
)


def _flatten_body(vm: VmState) -> Text:
    body = Text.assemble("Flatten ", text.where(vm), "?\n\n")
    body.append(
        f"Each of its {len(vm.disks)} disk{'s' if len(vm.disks) != 1 else ''} that is a linked clone gets its own copy"
        f" of the data it still shares with its source's snapshot (up to {text.size(vm.total_size)}):"
        " afterwards it no longer depends on that snapshot, which can then be removed. The VM keeps running."
        " Disks that are not clones are left as they are."
    )
    return body


FLATTEN = ConfirmTask[VmState](
    title=lambda vm: f"Flatten {text.safe(vm.name)}",
    body=lambda console, vm: _flatten_body(vm),
    confirm="Flatten",
    task=lambda vm: f"flatten {vm.name}",
    vm=lambda vm: vm.name,
    plan=lambda services, vm: vms.plan_flatten(services, vm.name),
    danger=False,
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


def _nothing_to_do(request: Request, message: str) -> None:
    request.app.notify(text.safe(message), title="Nothing to do", severity="information", markup=False)


def start(request: Request) -> None:
    vm = request.vm
    name = vm.name
    if vm.status is VmStatus.STARTED:
        _nothing_to_do(request, f"{name} is already Started on {vm.node or '?'}.")
        return
    if not vm.enabled:
        request.app.notify(
            text.safe(f"{name} is Disabled: e enables it (and starts it)."),
            title="Start",
            severity="warning",
            markup=False,
        )
        return
    request.console.start_task(f"start {name}", name, lambda s: vms.plan_start(s, name), show=False)


def stop(request: Request) -> None:
    vm = request.vm
    if vm.status in (VmStatus.STOPPED, VmStatus.DISABLED) and not vm.failed:
        _nothing_to_do(request, f"{vm.name} is already {vm.status.value}.")
        return
    confirm_task(request.app, STOP, vm)


def force_stop(request: Request) -> None:
    confirm_task(request.app, FORCE_STOP, request.vm)


def enable(request: Request) -> None:
    vm = request.vm
    if vm.enabled:
        _nothing_to_do(request, f"{vm.name} is already enabled ({vm.status.value}).")
        return
    confirm_task(request.app, ENABLE, vm)


def disable(request: Request) -> None:
    vm = request.vm
    if not vm.enabled and vm.status is VmStatus.DISABLED:
        _nothing_to_do(request, f"{vm.name} is already disabled.")
        return
    confirm_task(request.app, DISABLE, vm)


def cleanup(request: Request) -> None:
    name = request.vm.name
    request.console.start_task(
        f"cleanup {name}",
        name,
        lambda s: vms.plan_cleanup(s, name),
        show=False,
        on_finish=partial(report_after_cleanup, request.app),
    )


def report_after_cleanup(app: App[Any], record: TaskRecord) -> None:
    """A cleanup succeeds as soon as Pacemaker forgot the failures: what it does next is the answer.
    A moment later the console asks Pacemaker again and says what it sees (started, or failed again)."""
    vm = record.vm
    if vm is None or record.state is not TaskState.DONE:
        return
    console = console_of(app)
    cleaned_at = record.finished

    def ask_again() -> VmState:
        time.sleep(CLEANUP_SETTLE)
        return console.services.vm(vm)

    def answered(state: VmState) -> None:
        failure = state.last_failure
        again = state.failed or state.status is VmStatus.FAILED
        if failure is not None and failure.when is not None and cleaned_at is not None and failure.when >= cleaned_at:
            again = True
        where = f" on {state.node}" if state.node else ""
        if again:
            line = f"after the cleanup Pacemaker says: {vm} is {state.status.value}{where} and failed again"
            if failure is not None:
                line += f": {failure.summary()}"
            record.add_log(console.now(), line)
            console.failures.remember(
                vm,
                KeptFailure(
                    failure.when if failure else console.now(), failure.operation if failure else "cleanup", line
                ),
            )
            app.notify(text.safe(line), title=text.safe(f"cleanup {vm}: failed again"), severity="error", markup=False)
        else:
            line = f"after the cleanup Pacemaker says: {vm} is {state.status.value}{where}"
            record.add_log(console.now(), line)
            app.notify(text.safe(line), title=text.safe(f"cleanup {vm}"), markup=False)
        console.refresh_now()

    console.call_in_thread(ask_again, answered, f"ask Pacemaker about {vm} after its cleanup", quiet=True)


def flatten(request: Request) -> None:
    confirm_task(request.app, FLATTEN, request.vm)


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
def _replacing(name: str) -> Text:
    return Text.assemble(
        ("--force: ", "bold red"),
        "the existing VM ",
        text.plain(name, "bold"),
        (
            " is REPLACED: the new one is built aside, then swapped in; the old VM's disks, snapshots and"
            " configuration are deleted (its name, and its UUID unless another is given, go to the new one).",
            "red",
        ),
    )


def create(request: Request) -> None:
    app = request.app
    nodes = request.console.state.nodes if request.console.state is not None else ()

    def planned(result: tuple[CreateSpec, Task] | None) -> None:
        if result is None:
            return
        spec, task = result
        confirm_plan(
            app,
            task,
            PlanConfirmation(
                title=f"Create {text.safe(spec.name)}",
                task_title=f"create {spec.name}",
                vm=spec.name,
                label="Create",
                consequence=_replacing(spec.name) if spec.force else None,
                typed=spec.name if spec.force else None,
                danger=spec.force,
            ),
        )

    app.push_screen(CreateScreen(nodes=nodes), planned)


def clone(request: Request) -> None:
    app = request.app
    nodes = request.console.state.nodes if request.console.state is not None else ()

    def planned(result: tuple[CloneSpec, Task] | None) -> None:
        if result is None:
            return
        spec, task = result
        kind = "linked clone" if spec.linked else "clone"
        confirm_plan(
            app,
            task,
            PlanConfirmation(
                title=f"Clone {text.safe(spec.source)} as {text.safe(spec.name)}",
                task_title=f"{kind} {spec.source} → {spec.name}",
                vm=spec.name,
                label="Clone",
                consequence=_replacing(spec.name) if spec.force else None,
                typed=spec.name if spec.force else None,
                danger=spec.force,
            ),
        )

    app.push_screen(CloneScreen(request.vm, nodes=nodes), planned)


def import_vm(request: Request) -> None:
    """add-to-cluster: a domain of this host's libvirt becomes a cluster VM (its disks imported)."""
    app = request.app
    nodes = request.console.state.nodes if request.console.state is not None else ()

    def planned(result: tuple[ImportSpec, Task] | None) -> None:
        if result is None:
            return
        spec, task = result
        name = spec.new_name or spec.domain
        confirm_plan(
            app,
            task,
            PlanConfirmation(
                title=f"Import {text.safe(spec.domain)}",
                task_title=f"import {spec.domain} as {name}",
                vm=name,
                label="Import",
                consequence=Text(
                    "Its disks are copied into Ceph; when the cluster VM is built, the local libvirt definition is"
                    " removed (the local disk files stay where they are).",
                    style="yellow",
                ),
            ),
        )

    app.push_screen(ImportScreen(request.argument, nodes=nodes), planned)


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
