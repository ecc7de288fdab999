"""``vmconsole vm|metadata|constraint|remote|node|history|recover|lock ...``: the CLI twin of the console."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from vmconsole.cli import common
from vmconsole.cli.output import print_json, safe
from vmconsole.cli.render import vm_detail, vm_table
from vmconsole.core import vms
from vmconsole.domain.errors import ValidationError


class KeyValues(argparse.Action):
    """``key=value`` pairs: repeatable, later keys win, an item without '=' is a usage error."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        current = dict(getattr(namespace, self.dest) or {})
        for item in values:
            key, sep, value = item.partition("=")
            if not sep or not key:
                parser.error(f"{option_string}: expected key=value, got {item!r}")
            current[key] = value
        setattr(namespace, self.dest, current)


def _read_text(path: str, field: str) -> str:
    try:
        return Path(path).read_text()
    except FileNotFoundError as exc:
        raise ValidationError(f"{path} does not exist", field=field) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{path} cannot be read: {exc}", field=field) from exc


def _shared_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--disable", action="store_true", help="do not add it to Pacemaker (status Disabled)")
    parser.add_argument("--nostart", action="store_true", help="enable it with target-role Stopped")
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing VM (the old one stays until the new one is fully built)",
    )
    parser.add_argument("--metadata", nargs="+", action=KeyValues, metavar="KEY=VALUE", help="user metadata")
    parser.add_argument("--pinned-host", help="run only on this node ('' clears it, with vm update)")
    parser.add_argument("--preferred-host", help="prefer this node ('' clears it, with vm update)")
    parser.add_argument(
        "--enable-live-migration",
        dest="live_migration",
        action="store_const",
        const=True,
        default=None,
        help="allow live migration",
    )
    parser.add_argument("--disable-live-migration", dest="live_migration", action="store_const", const=False)
    parser.add_argument("--migration-user", help="user for live migration (default root)")
    parser.add_argument("--stop-timeout", help="seconds (default 30)")
    parser.add_argument("--migrate-to-timeout", help="seconds (default 120)")
    parser.add_argument("--migration-downtime", help="milliseconds (default 0)")
    parser.add_argument("--priority", help="Pacemaker priority (default 0)")
    for name in ("meta", "params", "utilization"):
        parser.add_argument(
            f"--pacemaker-{name}", nargs="+", action=KeyValues, metavar="KEY=VALUE", help=f"extra Pacemaker {name}"
        )
    parser.add_argument(
        "--add-crm-config-cmd",
        dest="crm_config_cmd",
        action="append",
        default=[],
        metavar="CMD",
        help="extra `crm configure` command (needs crmsh)",
    )


def _options(args: argparse.Namespace) -> vms.VmOptions:
    return vms.VmOptions(
        pinned_host=args.pinned_host,
        preferred_host=args.preferred_host,
        live_migration=args.live_migration,
        migration_user=args.migration_user,
        stop_timeout=args.stop_timeout,
        migrate_to_timeout=args.migrate_to_timeout,
        migration_downtime=args.migration_downtime,
        priority=args.priority,
        pacemaker_meta=args.pacemaker_meta,
        pacemaker_params=args.pacemaker_params,
        pacemaker_utilization=args.pacemaker_utilization,
        crm_config_cmd=args.crm_config_cmd,
        metadata=args.metadata,
        enable=not args.disable,
        start=not args.nostart,
    )


def add_parsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    vm = subparsers.add_parser("vm", help="VM lifecycle: list, status, create, clone, remove...")
    verbs = vm.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = verbs.add_parser("list", help="every VM with status, node, snapshots")
    common.add_json(p)
    p.set_defaults(handler=cmd_list)

    p = verbs.add_parser("status", help="one VM in detail")
    p.add_argument("name")
    common.add_json(p)
    p.set_defaults(handler=cmd_status)

    p = verbs.add_parser("create", help="create a VM from a disk image and a libvirt XML")
    p.add_argument("name")
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
    _shared_options(p)
    common.add_json(p)
    p.add_argument("--dry-run", action="store_true", help="validate and print the plan, change nothing")
    p.set_defaults(handler=cmd_create)

    p = verbs.add_parser("clone", help="copy a VM (deep copy, or --linked copy-on-write)")
    p.add_argument("source")
    p.add_argument("name")
    p.add_argument("--xml", help="libvirt XML for the clone (default: the source's)")
    p.add_argument("--linked", action="store_true", help="copy-on-write from a snapshot: near-instant")
    p.add_argument("--snapshot", help="with --linked: an existing per-disk snapshot to clone from")
    p.add_argument("--clear-constraint", action="store_true", help="drop the pinned/preferred host")
    p.add_argument("--clear-pacemaker-meta", action="store_true")
    p.add_argument("--clear-pacemaker-params", action="store_true")
    p.add_argument("--clear-pacemaker-utilization", action="store_true")
    _shared_options(p)
    common.add_json(p)
    p.add_argument("--dry-run", action="store_true", help="validate and print the plan, change nothing")
    p.set_defaults(handler=cmd_clone)

    for verb, text in (
        ("enable", "add the VM to Pacemaker (and start it unless --nostart)"),
        ("disable", "stop the VM and remove it from Pacemaker (its disks stay)"),
        ("start", "start an enabled VM and wait for it"),
        ("stop", "stop a VM and wait until it is stopped"),
        ("cleanup", "clear the VM's Pacemaker failures (fail count reset)"),
        ("flatten", "make a linked clone independent of its source"),
    ):
        p = verbs.add_parser(verb, help=text)
        p.add_argument("name")
        if verb == "enable":
            p.add_argument("--nostart", action="store_true")
        if verb == "stop":
            p.add_argument("--force", "-f", action="store_true", help="force-stop if a normal stop fails")
        common.add_json(p)
        if verb == "disable":
            common.add_destructive(p)
        else:
            p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
        p.set_defaults(handler=cmd_simple, simple=verb)

    p = verbs.add_parser("remove", help="delete a VM: its Pacemaker resource, disks and snapshots")
    p.add_argument("name")
    common.add_json(p)
    common.add_destructive(p)
    p.set_defaults(handler=cmd_remove)

    p = verbs.add_parser("update", help="change XML, settings or metadata in place (same name and UUID)")
    p.add_argument("name")
    p.add_argument("--xml", help="new libvirt XML (without disks)")
    p.add_argument("--remove-metadata", nargs="+", default=[], metavar="KEY")
    _shared_options(p)
    common.add_json(p)
    common.add_destructive(p)
    p.set_defaults(handler=cmd_update)

    for verb in ("move", "migrate"):
        p = verbs.add_parser(verb, help="move a running VM to another node (live when it allows live migration)")
        p.add_argument("name")
        p.add_argument("node")
        common.add_json(p)
        p.add_argument("--dry-run", action="store_true")
        p.set_defaults(handler=cmd_move)

    p = verbs.add_parser("diagnose", help="why a VM failed: failures, operation history, QEMU log, libvirt state")
    p.add_argument("name")
    common.add_json(p)
    p.set_defaults(handler=cmd_diagnose)

    p = verbs.add_parser("import", help="add-to-cluster: make a VM of this host's libvirt a cluster VM")
    p.add_argument("name", help="the libvirt domain")
    p.add_argument("--new-name", help="the cluster VM's name (default: the domain's)")
    p.add_argument("--disk-bus", default="virtio")
    _shared_options(p)
    common.add_json(p)
    p.add_argument("--dry-run", action="store_true")
    p.set_defaults(handler=cmd_import)

    p = verbs.add_parser("console", help="the VM's serial console, on whichever node runs it")
    p.add_argument("name")
    p.set_defaults(handler=cmd_console)

    node = subparsers.add_parser("node", help="cluster nodes: list, standby (drain), online")
    nverbs = node.add_subparsers(dest="verb", required=True, metavar="VERB")
    p = nverbs.add_parser("list", help="nodes with their status and VMs")
    common.add_json(p)
    p.set_defaults(handler=cmd_node_list)
    for verb in ("standby", "online"):
        p = nverbs.add_parser(verb, help="drain a node for maintenance" if verb == "standby" else "bring it back")
        p.add_argument("node")
        common.add_json(p)
        common.add_destructive(p) if verb == "standby" else p.add_argument("--dry-run", action="store_true")
        p.set_defaults(handler=cmd_node, standby=verb == "standby")

    md = subparsers.add_parser("metadata", help="a VM's user metadata")
    mverbs = md.add_subparsers(dest="verb", required=True, metavar="VERB")
    p = mverbs.add_parser("list", help="keys and values")
    p.add_argument("name")
    common.add_json(p)
    p.set_defaults(handler=cmd_metadata_list)
    p = mverbs.add_parser("get", help="one value")
    p.add_argument("name")
    p.add_argument("key")
    common.add_json(p)
    p.set_defaults(handler=cmd_metadata_get)
    p = mverbs.add_parser("set", help="set KEY=VALUE pairs")
    p.add_argument("name")
    p.add_argument("pairs", nargs="+", action=KeyValues, metavar="KEY=VALUE")
    common.add_json(p)
    p.add_argument("--dry-run", action="store_true")
    p.set_defaults(handler=cmd_metadata_set)
    p = mverbs.add_parser("remove", help="remove keys")
    p.add_argument("name")
    p.add_argument("keys", nargs="+")
    common.add_json(p)
    p.add_argument("--dry-run", action="store_true")
    p.set_defaults(handler=cmd_metadata_remove)

    cons = subparsers.add_parser("constraint", help="Pacemaker constraints kept in the VM's metadata")
    cverbs = cons.add_subparsers(dest="verb", required=True, metavar="VERB")
    p = cverbs.add_parser("colocate", help="keep a VM on the same node as other resources")
    p.add_argument("name")
    p.add_argument("resources", nargs="+")
    p.add_argument("--strong", action="store_true", help="score INFINITY instead of 700")
    common.add_json(p)
    p.add_argument("--dry-run", action="store_true")
    p.set_defaults(handler=cmd_colocate)

    remote = subparsers.add_parser("remote", help="the pacemaker-remote node a VM carries")
    rverbs = remote.add_subparsers(dest="verb", required=True, metavar="VERB")
    p = rverbs.add_parser("add")
    p.add_argument("name")
    p.add_argument("--remote-name", required=True)
    p.add_argument("--remote-address", required=True)
    p.add_argument("--remote-port")
    p.add_argument("--remote-timeout")
    common.add_json(p)
    p.add_argument("--dry-run", action="store_true")
    p.set_defaults(handler=cmd_remote_add)
    p = rverbs.add_parser("remove")
    p.add_argument("name")
    common.add_json(p)
    p.add_argument("--dry-run", action="store_true")
    p.set_defaults(handler=cmd_remote_remove)

    p = subparsers.add_parser("history", help="the audit trail of operations (who, when, what, result)")
    p.add_argument("--vm", help="only this VM")
    p.add_argument("--limit", type=int, default=50)
    common.add_json(p)
    p.set_defaults(handler=cmd_history)

    lock = subparsers.add_parser("lock", help="a VM's cluster-wide operation lock: show, break")
    lverbs = lock.add_subparsers(dest="verb", required=True, metavar="VERB")
    p = lverbs.add_parser("show", help="who holds the lock, since when, alive or not")
    p.add_argument("name")
    common.add_json(p)
    p.set_defaults(handler=cmd_lock)
    p = lverbs.add_parser("break", help="break the lock of a dead holder")
    p.add_argument("name")
    p.add_argument("--force", action="store_true", help="also when the holder is on another host")
    common.add_json(p)
    p.set_defaults(handler=cmd_lock)

    p = subparsers.add_parser("recover", help="incomplete tasks left by a killed vmconsole: list, undo")
    p.add_argument("task", nargs="?", help="the task to act on")
    p.add_argument("--undo", action="store_true", help="undo its completed steps")
    p.add_argument("--forget", action="store_true", help="drop the journal entry without acting")
    common.add_json(p)
    p.set_defaults(handler=cmd_recover)


# ---------------------------------------------------------------------------------------------- handlers
def cmd_list(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        state = svc.state()
    if args.json:
        print_json(state)
    else:
        print("\n".join(vm_table(state)))
    return 0 if not state.problems else 10


def cmd_status(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        vm = svc.vm(args.name, with_usage=True)
    if args.json:
        print_json(vm)
    else:
        print("\n".join(vm_detail(vm)))
    return 0


def cmd_create(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        spec = vms.CreateSpec(
            name=args.name,
            image=args.image,
            xml=_read_text(args.xml, "xml"),
            data_disks=args.data_disks,
            disk_bus=args.disk_bus,
            uuid=args.uuid,
            force=args.force,
            options=_options(args),
        )
        return common.execute(args, svc, vms.plan_create(svc, spec))


def cmd_clone(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        spec = vms.CloneSpec(
            source=args.source,
            name=args.name,
            xml=_read_text(args.xml, "xml") if args.xml else None,
            linked=args.linked,
            snapshot=args.snapshot,
            force=args.force,
            clear_constraint=args.clear_constraint,
            clear_pacemaker_meta=args.clear_pacemaker_meta,
            clear_pacemaker_params=args.clear_pacemaker_params,
            clear_pacemaker_utilization=args.clear_pacemaker_utilization,
            options=_options(args),
        )
        return common.execute(args, svc, vms.plan_clone(svc, spec))


def cmd_simple(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        verb = args.simple
        if verb == "enable":
            task = vms.plan_enable(svc, args.name, start=not args.nostart)
        elif verb == "disable":
            task = vms.plan_disable(svc, args.name)
            return common.execute(
                args,
                svc,
                task,
                confirm_with=args.name,
                warning=f"{args.name} will be stopped and removed from Pacemaker.",
            )
        elif verb == "start":
            task = vms.plan_start(svc, args.name)
        elif verb == "stop":
            task = vms.plan_stop(svc, args.name, force=args.force)
        elif verb == "cleanup":
            task = vms.plan_cleanup(svc, args.name)
        else:
            task = vms.plan_flatten(svc, args.name)
        return common.execute(args, svc, task)


def cmd_remove(args: argparse.Namespace) -> int:
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


def cmd_update(args: argparse.Namespace) -> int:
    from vmconsole.core.vms import plan_update, update_plan

    with common.open_services(args) as svc:
        plan = update_plan(
            svc,
            args.name,
            xml=_read_text(args.xml, "xml") if args.xml else None,
            options=_options(args),
            remove_metadata=tuple(args.remove_metadata),
        )
        if args.json and args.dry_run:
            print_json(
                {
                    "dry_run": True,
                    "changes": sorted(plan.metadata_changes),
                    "xml_diff": plan.xml_diff,
                    "restart": plan.restart,
                    "summary": plan.summary(),
                }
            )
            return 0
        if not args.json:
            print("\n".join(safe(line) for line in plan.summary()))
        if not plan.changed:
            return 0
        return common.execute(
            args,
            svc,
            plan_update(svc, plan),
            confirm_with=args.name if plan.restart else None,
            warning=f"{args.name} will be restarted.",
        )


def cmd_move(args: argparse.Namespace) -> int:
    from vmconsole.core.placement import plan_move

    with common.open_services(args) as svc:
        return common.execute(args, svc, plan_move(svc, args.name, args.node))


def cmd_diagnose(args: argparse.Namespace) -> int:
    from vmconsole.core.diagnose import diagnose

    with common.open_services(args) as svc:
        report = diagnose(svc, args.name).to_json()
    if args.json:
        print_json(report)
        return 0
    print(
        f"{safe(report['vm'])}: {report['status']} on {safe(report['node'] or '-')}, fail-count {report['fail_count']}"
        f"{', BLOCKED' if report['blocked'] else ''}{'' if report['managed'] else ', unmanaged'}"
    )
    print("failures:" if report["failures"] else "failures: none")
    for f in report["failures"]:
        print(
            f"  {f['when']}  {f['operation']} on {safe(f['node'])}: {safe(f['reason'] or f['status'])} (rc={f['rc']})"
        )
    print("operations:")
    for op in report["operations"][-15:]:
        print(
            f"  {op.get('last-rc-change', '?')}  {op.get('task', '?'):<10} rc={op.get('rc', '?')} "
            f"({safe(op.get('rc_text', ''))}) on {safe(op.get('node', ''))} {op.get('exec-time', '')}"
        )
    print(f"libvirt on {safe(report.get('libvirt_host', '?'))}: {report.get('libvirt_state') or 'not defined'}")
    print("QEMU log (tail):")
    for line in report.get("qemu_log", []):
        print(f"  {safe(line)}")
    for problem in report["problems"]:
        print(f"problem: {safe(problem)}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from vmconsole.core.vms import plan_import

    with common.open_services(args) as svc:
        return common.execute(
            args,
            svc,
            plan_import(svc, args.name, new_name=args.new_name, options=_options(args), disk_bus=args.disk_bus),
        )


def cmd_console(args: argparse.Namespace) -> int:
    import subprocess

    from vmconsole.core.vms import console_argv

    with common.open_services(args) as svc:
        argv = console_argv(svc, args.name)
    print(f"connecting: {' '.join(argv)} (Ctrl+] to leave)", file=sys.stderr)
    return subprocess.call(argv)


def cmd_node_list(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        state = svc.state()
    hosting: dict[str, list[str]] = {}
    for vm in state.vms:
        if vm.node:
            hosting.setdefault(vm.node, []).append(vm.name)
    if args.json:
        print_json(
            [
                {
                    "name": n.name,
                    "status": n.status.value,
                    "dc": n.is_dc,
                    "kind": n.kind,
                    "vms": hosting.get(n.name, []),
                }
                for n in state.nodes
            ]
        )
        return 0
    for n in state.nodes:
        print(
            f"{safe(n.name):<16} {n.status.value:<12} {'DC ' if n.is_dc else '   '}{n.kind:<7} "
            f"{', '.join(hosting.get(n.name, [])) or '-'}"
        )
    print(f"quorum: {state.quorum}, ceph: {state.ceph.status if state.ceph else 'unknown'}")
    return 0


def cmd_node(args: argparse.Namespace) -> int:
    from vmconsole.core.placement import plan_node_standby

    with common.open_services(args) as svc:
        task = plan_node_standby(svc, args.node, args.standby)
        if args.standby:
            return common.execute(
                args,
                svc,
                task,
                confirm_with=args.node,
                warning=f"Every VM on {args.node} will be moved away (or stopped).",
            )
        return common.execute(args, svc, task)


def cmd_metadata_list(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        values = vms.metadata_list(svc, args.name)
    if args.json:
        print_json(values)
    else:
        for key, value in sorted(values.items()):
            print(f"{safe(key)} = {safe(value)}")
    return 0


def cmd_metadata_get(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        value = vms.metadata_get(svc, args.name, args.key)
    if args.json:
        print_json({"key": args.key, "value": value})
    else:
        print(safe(value))
    return 0


def cmd_metadata_set(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        return common.execute(args, svc, vms.plan_metadata_set(svc, args.name, args.pairs))


def cmd_metadata_remove(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        return common.execute(args, svc, vms.plan_metadata_set(svc, args.name, {}, remove=args.keys))


def cmd_colocate(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        return common.execute(args, svc, vms.plan_colocate(svc, args.name, args.resources, args.strong))


def cmd_remote_add(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        task = vms.plan_remote(
            svc,
            args.name,
            remote_name=args.remote_name,
            address=args.remote_address,
            port=args.remote_port,
            timeout=args.remote_timeout,
        )
        return common.execute(args, svc, task)


def cmd_remote_remove(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        return common.execute(args, svc, vms.plan_remote(svc, args.name, remote_name=None))


def cmd_history(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        records = svc.history()
    if args.vm:
        records = [r for r in records if r.get("vm") == args.vm]
    records = records[-args.limit :]
    if args.json:
        print_json(records)
    else:
        for r in records:
            print(
                f"{r.get('finished', '?')}  {safe(r.get('who', '?')):<16} {r.get('operation', '?'):<14} "
                f"{safe(r.get('vm') or '-'):<12} {r.get('result', '?'):<9} {r.get('seconds', 0):>7.1f}s  "
                f"{safe(r.get('message', ''))}"
            )
    return 0


def cmd_lock(args: argparse.Namespace) -> int:
    from vmconsole.core.recovery import break_lock, lock_status

    with common.open_services(args) as svc:
        if args.verb == "show":
            status = lock_status(svc, args.name)
            if args.json:
                print_json(status)
            elif not status["locked"]:
                print(f"{args.name} is not locked")
            else:
                holder = status["holder"] or {}
                alive = {True: "alive", False: "dead", None: "unknown"}[status["holder_alive"]]
                print(
                    f"{args.name} is locked by {safe(holder.get('holder', '?'))} ({holder.get('operation', '?')}, "
                    f"pid {holder.get('pid', '?')}, {alive}) since {holder.get('since', '?')}"
                )
            return 0
        broken = break_lock(svc, args.name, force=args.force)
        if args.json:
            print_json({"vm": args.name, "broken": broken})
        else:
            print(f"lock of {args.name} broken: {', '.join(broken)}")
        return 0


def cmd_recover(args: argparse.Namespace) -> int:
    from vmconsole.core.recovery import forget, incomplete_tasks, undo_task

    with common.open_services(args) as svc:
        if args.task is None:
            entries = incomplete_tasks(svc)
            if args.json:
                print_json(entries)
            elif not entries:
                print("no incomplete task")
            else:
                for e in entries:
                    print(
                        f"{e['task']}  {e['operation']:<10} {safe(e.get('vm') or '-'):<12} {e['state']:<15} "
                        f"by {safe(e.get('holder'))} (pid {e.get('pid')}{', alive' if e.get('alive') else ''}) "
                        f"since {e.get('started')}; done: {', '.join(e.get('done', [])) or 'nothing'}"
                    )
            return 0
        if args.forget:
            forget(svc, args.task)
            print(f"journal entry {args.task} dropped")
            return 0
        if not args.undo:
            print("say what to do: --undo (undo its completed steps) or --forget", file=sys.stderr)
            return 2
        result = undo_task(svc, args.task)
        if args.json:
            print_json(result)
        else:
            print(safe(result["message"]))
        return 0
