"""``vmconsole snapshot ...``: a VM's snapshots (all its disks at one instant): take, list, protect, roll
back, remove, purge, and retention policies that ``prune`` applies."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

import humanize

from vmconsole.cli import common
from vmconsole.cli.options import Subparsers, add_verb, noun, verb
from vmconsole.cli.output import emit, safe
from vmconsole.core import snapshots
from vmconsole.core.services import Services
from vmconsole.domain import validate
from vmconsole.domain.errors import ValidationError


def add_parser(subparsers: Subparsers) -> None:
    verbs = noun(subparsers, "snapshot", help="snapshots: create, list, rollback, purge, retention")
    with verb(verbs, "create", snapshot_create, help="snapshot every disk of a VM at one instant", dry_run=True) as p:
        p.add_argument("snapshot", nargs="?", help="default: snap-YYYYMMDD-HHMMSS (UTC)")
        p.add_argument("--no-freeze", action="store_true", help="do not freeze guest filesystems")
    with verb(
        verbs, "list", snapshot_list, help="snapshots with time, age, protection, disks, data written since"
    ) as p:
        p.add_argument("--fast", action="store_true", help="skip the written-since computation")
    add_verb(verbs, "remove", snapshot_remove, help="remove one snapshot", operands=("name", "snapshot"), confirm=True)
    for name in ("protect", "unprotect"):
        with verb(
            verbs,
            name,
            snapshot_protect,
            help=f"{name} a snapshot (protected ones survive purge and remove)",
            operands=("name", "snapshot"),
            dry_run=True,
        ) as p:
            p.set_defaults(protect=name == "protect")
    with verb(
        verbs, "rollback", snapshot_rollback, help="return a VM to a snapshot (a plan first; undoable)", confirm=True
    ) as p:
        p.add_argument("snapshot", nargs="?")
        p.add_argument("--no-safety", action="store_true", help="skip the safety snapshot of the current state")
        p.add_argument("--undo", action="store_true", help="undo the last rollback (return to its safety snapshot)")
    with verb(
        verbs,
        "purge",
        snapshot_purge,
        help="remove many snapshots: --all, --oldest N, or --before DATETIME",
        confirm=True,
    ) as p:
        group = p.add_mutually_exclusive_group(required=True)
        group.add_argument("--all", action="store_true")
        group.add_argument("--oldest", metavar="N")
        group.add_argument("--before", metavar="DATETIME", help="ISO 8601; without a zone it is local time")
    with verb(
        verbs,
        "policy",
        snapshot_policy,
        help="a VM's retention policy (applied by `snapshot prune`)",
        dry_run="show the policy that would be set, change nothing",
    ) as p:
        p.add_argument("--keep-last", type=int, default=None)
        p.add_argument("--keep-daily", type=int, default=None, help="newest snapshot of each of the last D days")
    with verb(
        verbs,
        "prune",
        snapshot_prune,
        help="apply the retention policies (all VMs with one, or those named)",
        operands=(),
        confirm=True,
    ) as p:
        p.add_argument("names", nargs="*")
    with verb(
        verbs, "bulk", snapshot_bulk, help="snapshot several VMs at once, in parallel", operands=(), confirm=True
    ) as p:
        p.add_argument("names", nargs="*")
        p.add_argument("--filter", help="status:started, node:NAME, name~REGEX or a substring")
        p.add_argument("--snapshot", help="snapshot name (default: snap-YYYYMMDD-HHMMSS)")


def snapshot_create(args: argparse.Namespace) -> int:
    return common.plan_and_run(
        args, lambda svc: snapshots.plan_snapshot_create(svc, args.name, args.snapshot, freeze=not args.no_freeze)
    )


def snapshot_list(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        infos = snapshots.list_snapshots(svc, args.name, with_written=not args.fast)
    as_json = [
        {
            "name": i.snapshot.name,
            "kind": i.snapshot.kind,
            "created": i.snapshot.created,
            "age_seconds": i.age_seconds,
            "protected": i.snapshot.protected,
            "disks": i.snapshot.disks,
            "missing_on": i.snapshot.missing_on,
            "written_since": i.written_since,
            "safety": i.safety,
            "clones": i.clones,
            "config_recorded": bool(i.snapshot.metadata),
        }
        for i in infos
    ]
    emit(args.json, as_json, lambda: _snapshot_lines(args.name, infos))
    return 0


def _snapshot_lines(vm: str, infos: list[snapshots.SnapshotInfo]) -> Iterator[str]:
    if not infos:
        yield f"{safe(vm)} has no snapshot"
    for i in infos:
        s = i.snapshot
        age = humanize.naturaldelta(i.age_seconds) if i.age_seconds is not None else "?"
        written = humanize.naturalsize(i.written_since, binary=True) if i.written_since is not None else "?"
        flags = [safe(s.kind)]
        if s.protected:
            flags.append("protected")
        if i.safety:
            flags.append("safety")
        if s.missing_on:
            flags.append("MISSING on " + safe(", ".join(s.missing_on)))
        if i.clones:
            flags.append("clones: " + safe(", ".join(i.clones)))
        when = s.created.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z") if s.created else "?"
        yield f"{safe(s.name):<28} {when}  {age:>14} ago  written since {written:>10}  ({', '.join(flags)})"
    yield f"{'NOW':<28} {datetime.now(UTC).astimezone():%Y-%m-%d %H:%M:%S %Z}"


def snapshot_remove(args: argparse.Namespace) -> int:
    return common.plan_and_run(
        args,
        lambda svc: snapshots.plan_snapshot_remove(svc, args.name, args.snapshot),
        confirm_with=args.name,
        warning=f"Snapshot {args.snapshot} of {args.name} will be deleted.",
    )


def snapshot_protect(args: argparse.Namespace) -> int:
    """``protect`` and ``unprotect``: the parser sets ``args.protect``."""
    return common.plan_and_run(
        args, lambda svc: snapshots.plan_snapshot_protect(svc, args.name, args.snapshot, args.protect)
    )


def snapshot_rollback(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        if args.undo:
            if args.snapshot:
                raise ValidationError("--undo takes no snapshot name", field="snapshot")
            return common.execute(
                args,
                svc,
                snapshots.plan_rollback_undo(svc, args.name),
                confirm_with=args.name,
                warning=f"{args.name} will return to the state before its last rollback.",
            )
        if not args.snapshot:
            raise ValidationError("name the snapshot to roll back to (or --undo)", field="snapshot")
        plan = snapshots.rollback_plan(svc, args.name, args.snapshot, safety=not args.no_safety)
        if common.preview(args, {"plan": plan, "summary": plan.summary()}, [safe(line) for line in plan.summary()]):
            return 0
        return common.execute(
            args,
            svc,
            snapshots.plan_rollback(svc, plan),
            confirm_with=args.name,
            warning="Rollback discards what was written since the snapshot.",
        )


def snapshot_purge(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        before = None
        if args.before:
            parsed = validate.parse_datetime(args.before)
            if parsed.assumed_local and not args.json:
                print(f"note: {args.before!r} has no time zone: read as local time, {parsed.describe()}")
            before = parsed.value
        oldest = validate.count(args.oldest, "oldest") if args.oldest is not None else None
        plan = snapshots.purge_plan(svc, args.name, all=args.all, oldest=oldest, before=before)
        return _purge(args, svc, [plan])


def snapshot_prune(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        known = snapshots.policies(svc)
        names = args.names or sorted(known)
        missing = [n for n in names if n not in known]
        if missing:
            raise ValidationError(
                f"no retention policy for {', '.join(missing)}",
                field="names",
                hint="set one with `vmconsole snapshot policy VM --keep-last N --keep-daily D`",
            )
        return _purge(args, svc, [snapshots.prune_plan(svc, name, known[name]) for name in names])


def _purge(args: argparse.Namespace, svc: Services, plans: list[snapshots.PurgePlan]) -> int:
    """What purge and prune share: show every VM's plan, then remove the snapshots of all of them as one task."""
    would_change = any(p.remove for p in plans)
    as_json = {"plans": [p.to_dict() for p in plans]}
    if common.preview(args, as_json, _purge_lines(plans), would_change=would_change):
        return 0
    if args.dry_run:
        print("(dry run: nothing was changed)")
        return 0
    plans = [p for p in plans if p.remove]
    if not plans:
        return common.unchanged(args, "nothing to remove", **as_json)
    vms = ", ".join(p.vm for p in plans)
    total = sum(len(p.remove) for p in plans)
    return common.execute(
        args,
        svc,
        snapshots.plan_purge_many(svc, plans),
        confirm_with=plans[0].vm if len(plans) == 1 else str(len(plans)),
        warning=f"{total} snapshot(s) of {vms} will be deleted.",
    )


def _purge_lines(plans: Iterable[snapshots.PurgePlan]) -> Iterator[str]:
    for plan in plans:
        yield f"{safe(plan.vm)}: {safe(plan.mode)}"
        for s in plan.remove:
            yield (
                f"  remove {safe(s.name):<28} {s.created.isoformat() if s.created else '?'}  "
                f"on {safe(', '.join(s.disks))}"
            )
        for s, reason in plan.keep:
            yield f"  keep   {safe(s.name):<28} ({safe(reason)})"
        for note in plan.notes:
            yield f"  note: {safe(note)}"


def snapshot_policy(args: argparse.Namespace) -> int:
    """Show a VM's retention policy; with --keep-last / --keep-daily set it (0 and 0 removes it)."""
    with common.open_services(args) as svc:
        before = snapshots.policies(svc).get(args.name, snapshots.RetentionPolicy())
        current = before
        if args.keep_last is not None or args.keep_daily is not None:
            current = snapshots.RetentionPolicy(
                validate.count(args.keep_last, "keep_last") if args.keep_last is not None else before.keep_last,
                validate.count(args.keep_daily, "keep_daily") if args.keep_daily is not None else before.keep_daily,
            )
        changed = current != before
        if changed and not args.dry_run:
            snapshots.set_policy(svc, args.name, current)
    document = {"vm": args.name, **current.to_json()}
    if args.dry_run:
        document.update(dry_run=True, would_change=changed, before=before.to_json())
    lines = [
        f"{safe(args.name)}: keep the last {current.keep_last}, and the newest of each of the last "
        f"{current.keep_daily} day(s)"
    ]
    if args.dry_run:
        lines.append("(dry run: nothing was changed)" if changed else "(dry run: the policy is that already)")
    emit(args.json, document, lambda: lines, changed=changed and not args.dry_run)
    return 0


def snapshot_bulk(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        names = list(args.names)
        if args.filter:
            names += snapshots.select_vms(svc, args.filter)
        if not names:
            raise ValidationError("name VMs or give a --filter that matches some", field="names")
        task = snapshots.plan_bulk_snapshot(svc, names, args.snapshot)
        return common.execute(
            args,
            svc,
            task,
            confirm_with=str(len(task.args["vms"])),
            warning=f"Snapshot {len(task.args['vms'])} VM(s): {', '.join(task.args['vms'])}.",
        )
