"""``vmconsole snapshot create|list|remove|protect|unprotect|rollback|purge|prune|policy|bulk``."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import humanize

from vmconsole.cli import common
from vmconsole.cli.output import print_json, safe
from vmconsole.core import snapshots
from vmconsole.core.services import Services
from vmconsole.domain import validate
from vmconsole.domain.errors import ValidationError


def add_parsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    snap = subparsers.add_parser("snapshot", help="snapshots: create, list, rollback, purge, retention")
    verbs = snap.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = verbs.add_parser("create", help="snapshot every disk of a VM at one instant")
    p.add_argument("name")
    p.add_argument("snapshot", nargs="?", help="default: snap-YYYYMMDD-HHMMSS (UTC)")
    p.add_argument("--no-freeze", action="store_true", help="do not freeze guest filesystems")
    common.add_json(p)
    p.add_argument("--dry-run", action="store_true")
    p.set_defaults(handler=cmd_create)

    p = verbs.add_parser("list", help="snapshots with time, age, protection, disks, data written since")
    p.add_argument("name")
    p.add_argument("--fast", action="store_true", help="skip the written-since computation")
    common.add_json(p)
    p.set_defaults(handler=cmd_list)

    p = verbs.add_parser("remove", help="remove one snapshot")
    p.add_argument("name")
    p.add_argument("snapshot")
    common.add_json(p)
    common.add_destructive(p)
    p.set_defaults(handler=cmd_remove)

    for verb in ("protect", "unprotect"):
        p = verbs.add_parser(verb, help=f"{verb} a snapshot (protected ones survive purge and remove)")
        p.add_argument("name")
        p.add_argument("snapshot")
        common.add_json(p)
        p.add_argument("--dry-run", action="store_true")
        p.set_defaults(handler=cmd_protect, protect=verb == "protect")

    p = verbs.add_parser("rollback", help="return a VM to a snapshot (a plan first; undoable)")
    p.add_argument("name")
    p.add_argument("snapshot", nargs="?")
    p.add_argument("--no-safety", action="store_true", help="skip the safety snapshot of the current state")
    p.add_argument("--undo", action="store_true", help="undo the last rollback (return to its safety snapshot)")
    common.add_json(p)
    common.add_destructive(p)
    p.set_defaults(handler=cmd_rollback)

    p = verbs.add_parser("purge", help="remove many snapshots: --all, --oldest N, or --before DATETIME")
    p.add_argument("name")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--all", action="store_true")
    group.add_argument("--oldest", metavar="N")
    group.add_argument("--before", metavar="DATETIME", help="ISO 8601; without a zone it is local time")
    common.add_json(p)
    common.add_destructive(p)
    p.set_defaults(handler=cmd_purge)

    p = verbs.add_parser("policy", help="a VM's retention policy (applied by `snapshot prune`)")
    p.add_argument("name")
    p.add_argument("--keep-last", type=int, default=None)
    p.add_argument("--keep-daily", type=int, default=None, help="newest snapshot of each of the last D days")
    common.add_json(p)
    p.set_defaults(handler=cmd_policy)

    p = verbs.add_parser("prune", help="apply the retention policies (all VMs with one, or those named)")
    p.add_argument("names", nargs="*")
    common.add_json(p)
    common.add_destructive(p)
    p.set_defaults(handler=cmd_prune)

    p = verbs.add_parser("bulk", help="snapshot several VMs at once, in parallel")
    p.add_argument("names", nargs="*")
    p.add_argument("--filter", help="status:started, node:NAME, name~REGEX or a substring")
    p.add_argument("--snapshot", help="snapshot name (default: snap-YYYYMMDD-HHMMSS)")
    common.add_json(p)
    common.add_destructive(p)
    p.set_defaults(handler=cmd_bulk)


def cmd_create(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        return common.execute(
            args, svc, snapshots.plan_snapshot_create(svc, args.name, args.snapshot, freeze=not args.no_freeze)
        )


def cmd_list(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        infos = snapshots.list_snapshots(svc, args.name, with_written=not args.fast)
    if args.json:
        print_json(
            [
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
        )
        return 0
    if not infos:
        print(f"{args.name} has no snapshot")
    for i in infos:
        s = i.snapshot
        age = humanize.naturaldelta(i.age_seconds) if i.age_seconds is not None else "?"
        written = humanize.naturalsize(i.written_since, binary=True) if i.written_since is not None else "?"
        flags = [s.kind]
        if s.protected:
            flags.append("protected")
        if i.safety:
            flags.append("safety")
        if s.missing_on:
            flags.append("MISSING on " + ", ".join(s.missing_on))
        if i.clones:
            flags.append("clones: " + ", ".join(i.clones))
        when = s.created.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z") if s.created else "?"
        print(f"{safe(s.name):<28} {when}  {age:>14} ago  written since {written:>10}  ({', '.join(flags)})")
    print(f"{'NOW':<28} {datetime.now(UTC).astimezone():%Y-%m-%d %H:%M:%S %Z}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        task = snapshots.plan_snapshot_remove(svc, args.name, args.snapshot)
        return common.execute(
            args, svc, task, confirm_with=args.name, warning=f"Snapshot {args.snapshot} of {args.name} will be deleted."
        )


def cmd_protect(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        return common.execute(args, svc, snapshots.plan_snapshot_protect(svc, args.name, args.snapshot, args.protect))


def cmd_rollback(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        if args.undo:
            if args.snapshot:
                raise ValidationError("--undo takes no snapshot name", field="snapshot")
            task = snapshots.plan_rollback_undo(svc, args.name)
            return common.execute(
                args,
                svc,
                task,
                confirm_with=args.name,
                warning=f"{args.name} will return to the state before its last rollback.",
            )
        if not args.snapshot:
            raise ValidationError("name the snapshot to roll back to (or --undo)", field="snapshot")
        plan = snapshots.rollback_plan(svc, args.name, args.snapshot, safety=not args.no_safety)
        if args.dry_run and args.json:
            print_json({"dry_run": True, "plan": plan, "summary": plan.summary()})
            return 0
        if not args.json:
            print("\n".join(safe(line) for line in plan.summary()))
        return common.execute(
            args,
            svc,
            snapshots.plan_rollback(svc, plan),
            confirm_with=args.name,
            warning="Rollback discards what was written since the snapshot.",
        )


def _print_plan(plan: snapshots.PurgePlan) -> None:
    print(f"{plan.vm}: {plan.mode}")
    for s in plan.remove:
        print(f"  remove {safe(s.name):<28} {s.created.isoformat() if s.created else '?'}  on {', '.join(s.disks)}")
    for s, reason in plan.keep:
        print(f"  keep   {safe(s.name):<28} ({reason})")
    for note in plan.notes:
        print(f"  note: {note}")


def _run_purge(args: argparse.Namespace, svc: Services, plans: list[snapshots.PurgePlan]) -> int:
    if args.json and args.dry_run:
        print_json({"dry_run": True, "plans": [p.to_dict() for p in plans]})
        return 0
    if not args.json:
        for plan in plans:
            _print_plan(plan)
    if args.dry_run:
        print("(dry run: nothing was changed)")
        return 0
    plans = [p for p in plans if p.remove]
    if not plans:
        print("nothing to remove")
        return 0
    vms = ", ".join(p.vm for p in plans)
    total = sum(len(p.remove) for p in plans)
    return common.execute(
        args,
        svc,
        snapshots.plan_purge_many(svc, plans),
        confirm_with=plans[0].vm if len(plans) == 1 else str(len(plans)),
        warning=f"{total} snapshot(s) of {vms} will be deleted.",
    )


def cmd_purge(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        before = None
        if args.before:
            parsed = validate.parse_datetime(args.before)
            if parsed.assumed_local and not args.json:
                print(f"note: {args.before!r} has no time zone: read as local time, {parsed.describe()}")
            before = parsed.value
        oldest = validate.count(args.oldest, "oldest") if args.oldest is not None else None
        plan = snapshots.purge_plan(svc, args.name, all=args.all, oldest=oldest, before=before)
        return _run_purge(args, svc, [plan])


def cmd_policy(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        current = snapshots.policies(svc).get(args.name, snapshots.RetentionPolicy())
        if args.keep_last is not None or args.keep_daily is not None:
            current = snapshots.RetentionPolicy(
                args.keep_last if args.keep_last is not None else current.keep_last,
                args.keep_daily if args.keep_daily is not None else current.keep_daily,
            )
            snapshots.set_policy(svc, args.name, current)
    if args.json:
        print_json({"vm": args.name, **current.to_json()})
    else:
        print(
            f"{args.name}: keep the last {current.keep_last}, and the newest of each of the last "
            f"{current.keep_daily} day(s)"
        )
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
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
        plans = [snapshots.prune_plan(svc, name, known[name]) for name in names]
        return _run_purge(args, svc, plans)


def cmd_bulk(args: argparse.Namespace) -> int:
    with common.open_services(args) as svc:
        names = list(args.names)
        if args.filter:
            names += snapshots.select_vms(svc, args.filter)
        if not names:
            raise ValidationError("name VMs or give a --filter that matches some", field="names")
        task = snapshots.plan_bulk_snapshot(svc, names, args.snapshot)
        code = common.execute(
            args,
            svc,
            task,
            confirm_with=str(len(task.args["vms"])),
            warning=f"Snapshot {len(task.args['vms'])} VM(s): {', '.join(task.args['vms'])}.",
        )
        return code
