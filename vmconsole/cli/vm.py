"""``vmconsole vm ...``: a VM's life, from create and clone to remove, with its status, placement and console."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from vmconsole.cli import common
from vmconsole.cli.options import (
    PRINT_PLAN,
    VALIDATE_PLAN,
    Subparsers,
    add_verb,
    add_vm_settings,
    noun,
    read_xml,
    verb,
    vm_options,
)
from vmconsole.cli.output import emit, safe
from vmconsole.cli.render import vm_detail, vm_table
from vmconsole.core import vms
from vmconsole.core.diagnose import diagnose
from vmconsole.core.placement import plan_move
from vmconsole.domain.errors import ValidationError

PARTIAL_STATE = 10  # exit code of `vm list` when some part of the cluster did not answer


def add_parser(subparsers: Subparsers) -> None:
    verbs = noun(subparsers, "vm", help="VM lifecycle: list, status, create, clone, remove...")
    add_verb(verbs, "list", vm_list, help="every VM with status, node, snapshots", operands=())
    add_verb(verbs, "status", vm_status, help="one VM in detail")
    with verb(
        verbs, "create", vm_create, help="create a VM from a disk image and a libvirt XML", dry_run=VALIDATE_PLAN
    ) as p:
        p.add_argument("--image", "-i", required=True, help="system disk image (qcow2 or raw)")
        p.add_argument("--xml", required=True, help="libvirt domain XML without the VM's disks")
        p.add_argument(
            "--data-disk",
            "--additional-disk",
            dest="data_disks",
            action="append",
            default=[],
            metavar="PATH",
            help="additional disk image, repeatable (data_<vm>_<i>)",
        )
        p.add_argument("--disk-bus", default="virtio", help="virtio (default), sata, scsi, ide, usb")
        p.add_argument("--uuid", help="fixed UUID (default: the XML's, else a new one)")
        add_vm_settings(p)
    with verb(
        verbs,
        "clone",
        vm_clone,
        help="copy a VM (deep copy, or --linked copy-on-write)",
        operands=("source", "name"),
        dry_run=VALIDATE_PLAN,
    ) as p:
        p.add_argument("--xml", help="libvirt XML for the clone (default: the source's)")
        p.add_argument("--linked", action="store_true", help="copy-on-write from a snapshot: near-instant")
        p.add_argument("--snapshot", help="with --linked: an existing per-disk snapshot to clone from")
        p.add_argument("--clear-constraint", action="store_true", help="drop the pinned/preferred host")
        p.add_argument("--clear-pacemaker-meta", action="store_true")
        p.add_argument("--clear-pacemaker-params", action="store_true")
        p.add_argument("--clear-pacemaker-utilization", action="store_true")
        add_vm_settings(p)
    with verb(
        verbs, "enable", vm_enable, help="add the VM to Pacemaker (and start it unless --nostart)", dry_run=PRINT_PLAN
    ) as p:
        p.add_argument("--nostart", action="store_true")
    add_verb(
        verbs, "disable", vm_disable, help="stop the VM and remove it from Pacemaker (its disks stay)", confirm=True
    )
    add_verb(verbs, "start", vm_start, help="start an enabled VM and wait for it", dry_run=PRINT_PLAN)
    with verb(verbs, "stop", vm_stop, help="stop a VM and wait until it is stopped", dry_run=PRINT_PLAN) as p:
        p.add_argument("--force", "-f", action="store_true", help="force-stop if a normal stop fails")
    add_verb(
        verbs, "cleanup", vm_cleanup, help="clear the VM's Pacemaker failures (fail count reset)", dry_run=PRINT_PLAN
    )
    add_verb(verbs, "flatten", vm_flatten, help="make a linked clone independent of its source", dry_run=PRINT_PLAN)
    add_verb(verbs, "remove", vm_remove, help="delete a VM: its Pacemaker resource, disks and snapshots", confirm=True)
    with verb(
        verbs, "update", vm_update, help="change XML, settings or metadata in place (same name and UUID)", confirm=True
    ) as p:
        p.add_argument("--xml", help="new libvirt XML (without disks)")
        p.add_argument("--remove-metadata", nargs="+", default=[], metavar="KEY")
        add_vm_settings(p, new_vm=False, replace=False)
    for name in ("move", "migrate"):
        add_verb(
            verbs,
            name,
            vm_move,
            help="move a running VM to another node (live when it allows live migration)"
            if name == "move"
            else "live-migrate a running VM to another node (refused, saying why, when it cannot go live)",
            operands=("name", "node"),
            dry_run=True,
        )
    add_verb(
        verbs, "diagnose", vm_diagnose, help="why a VM failed: failures, operation history, QEMU log, libvirt state"
    )
    with verb(
        verbs,
        "import",
        vm_import,
        help="add-to-cluster: make a VM of this host's libvirt a cluster VM",
        operands=(),
        dry_run=True,
    ) as p:
        p.add_argument("name", help="the libvirt domain")
        p.add_argument("--new-name", help="the cluster VM's name (default: the domain's)")
        p.add_argument("--disk-bus", default="virtio")
        add_vm_settings(p, replace=False)
    add_verb(verbs, "console", vm_console, help="the VM's serial console, on whichever node runs it", json=False)


def vm_list(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        state = svc.state()
    emit(args.json, state, lambda: vm_table(state))
    return PARTIAL_STATE if state.problems else 0


def vm_status(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        vm = svc.vm(args.name, with_usage=True)
    emit(args.json, vm, lambda: vm_detail(vm))
    return 0


def vm_create(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        spec = vms.CreateSpec(
            name=args.name,
            image=args.image,
            xml=read_xml(args.xml),
            data_disks=args.data_disks,
            disk_bus=args.disk_bus,
            uuid=args.uuid,
            force=args.force,
            options=vm_options(args),
        )
        return common.execute(args, svc, vms.plan_create(svc, spec))


def vm_clone(args: argparse.Namespace) -> int:
    if args.snapshot and not args.linked:
        raise ValidationError(
            "--snapshot names the snapshot a linked clone is made from: it needs --linked",
            field="--snapshot",
            hint="a deep clone copies the VM as it is now (at one instant across its disks)",
        )
    with common.open_services(args) as svc:
        spec = vms.CloneSpec(
            source=args.source,
            name=args.name,
            xml=read_xml(args.xml) if args.xml else None,
            linked=args.linked,
            snapshot=args.snapshot,
            force=args.force,
            clear_constraint=args.clear_constraint,
            clear_pacemaker_meta=args.clear_pacemaker_meta,
            clear_pacemaker_params=args.clear_pacemaker_params,
            clear_pacemaker_utilization=args.clear_pacemaker_utilization,
            options=vm_options(args),
        )
        return common.execute(args, svc, vms.plan_clone(svc, spec))


def vm_enable(args: argparse.Namespace) -> int:
    return common.plan_and_run(args, lambda svc: vms.plan_enable(svc, args.name, start=not args.nostart))


def vm_disable(args: argparse.Namespace) -> int:
    return common.plan_and_run(
        args,
        lambda svc: vms.plan_disable(svc, args.name),
        confirm_with=args.name,
        warning=f"{args.name} will be stopped and removed from Pacemaker.",
    )


def vm_start(args: argparse.Namespace) -> int:
    return common.plan_and_run(args, lambda svc: vms.plan_start(svc, args.name))


def vm_stop(args: argparse.Namespace) -> int:
    return common.plan_and_run(args, lambda svc: vms.plan_stop(svc, args.name, force=args.force))


def vm_cleanup(args: argparse.Namespace) -> int:
    return common.plan_and_run(args, lambda svc: vms.plan_cleanup(svc, args.name))


def vm_flatten(args: argparse.Namespace) -> int:
    return common.plan_and_run(args, lambda svc: vms.plan_flatten(svc, args.name))


def vm_remove(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        task = vms.plan_remove(svc, args.name)
        images = ", ".join(task.args.get("images", []))
        return common.execute(
            args,
            svc,
            task,
            confirm_with=args.name,
            warning=f"{args.name} will be DELETED with its disks ({images}) and all snapshots.",
        )


def vm_update(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        plan = vms.update_plan(
            svc,
            args.name,
            xml=read_xml(args.xml) if args.xml else None,
            options=vm_options(args),
            remove_metadata=tuple(args.remove_metadata),
        )
        as_json = {
            "changes": sorted(plan.metadata_changes),
            "xml_diff": plan.xml_diff,
            "restart": plan.restart,
            "summary": plan.summary(),
            "warnings": list(plan.warnings),
        }
        if common.preview(args, as_json, [safe(line) for line in plan.summary()], would_change=plan.changed):
            return 0
        if not plan.changed:
            if args.json:
                return common.unchanged(args, f"{args.name}: nothing to change", **as_json)
            return 0
        return common.execute(
            args,
            svc,
            vms.plan_update(svc, plan),
            confirm_with=args.name if plan.restart else None,
            warning=f"{args.name} will be restarted.",
        )


def vm_move(args: argparse.Namespace) -> int:
    return common.plan_and_run(args, lambda svc: plan_move(svc, args.name, args.node, live_only=args.verb == "migrate"))


def vm_diagnose(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        report = diagnose(svc, args.name).to_json()
    emit(args.json, report, lambda: _diagnosis_lines(report))
    return 0


def _diagnosis_lines(report: dict[str, Any]) -> Iterator[str]:
    yield (
        f"{safe(report['vm'])}: {safe(report['status'])} on {safe(report['node'] or '-')}, "
        f"fail-count {safe(report['fail_count'])}"
        f"{', BLOCKED' if report['blocked'] else ''}{'' if report['managed'] else ', unmanaged'}"
    )
    yield "failures:" if report["failures"] else "failures: none"
    for f in report["failures"]:
        yield (
            f"  {safe(f['when'])}  {safe(f['operation'])} on {safe(f['node'])}: "
            f"{safe(f['reason'] or f['status'])} (rc={safe(f['rc'])})"
        )
    yield "operations:"
    for op in report["operations"][-15:]:
        yield (
            f"  {safe(op.get('last-rc-change', '?'))}  {safe(op.get('task', '?')):<10} rc={safe(op.get('rc', '?'))} "
            f"({safe(op.get('rc_text', ''))}) on {safe(op.get('node', ''))} {safe(op.get('exec-time', ''))}"
        )
    yield f"libvirt on {safe(report.get('libvirt_host', '?'))}: {safe(report.get('libvirt_state') or 'not defined')}"
    yield "QEMU log (tail):"
    for line in report.get("qemu_log", []):
        yield f"  {safe(line)}"
    for problem in report["problems"]:
        yield f"problem: {safe(problem)}"


def vm_import(args: argparse.Namespace) -> int:
    return common.plan_and_run(
        args,
        lambda svc: vms.plan_import(
            svc, args.name, new_name=args.new_name, options=vm_options(args), disk_bus=args.disk_bus
        ),
    )


def vm_console(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        argv = vms.console_argv(svc, args.name)
    print(f"connecting: {safe(' '.join(argv))} (Ctrl+] to leave)", file=sys.stderr)
    return subprocess.call(argv)
