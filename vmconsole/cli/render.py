"""Plain-text renderings of the state model for the CLI."""

from __future__ import annotations

from datetime import UTC, datetime

import humanize

from vmconsole.cli.output import safe
from vmconsole.domain.model import ClusterState, VmState


def age(when: datetime | None) -> str:
    if when is None:
        return "-"
    return humanize.naturaldelta(datetime.now(UTC) - when)


def vm_table(state: ClusterState) -> list[str]:
    rows = [("NAME", "STATUS", "NODE", "SNAPS", "LATEST", "SIZE", "NOTE")]
    for vm in state.vms:
        latest = vm.latest_snapshot
        note = ""
        if vm.last_failure and vm.failed:
            note = vm.last_failure.summary()
        elif vm.problems:
            note = vm.problems[0]
        rows.append(
            (
                vm.name,
                vm.status.value + (" (blocked)" if vm.blocked else ""),
                vm.node or "-",
                str(len(vm.snapshots)),
                age(latest.created) if latest else "-",
                humanize.naturalsize(vm.total_size, binary=True) if vm.disks else "-",
                note,
            )
        )
    widths = [max(len(safe(r[i])) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(safe(c).ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + safe(r[-1]) for r in rows
    ]
    if state.problems:
        lines.append("")
        lines += [f"PARTIAL: {safe(p)}" for p in state.problems]
    return lines


def vm_detail(vm: VmState) -> list[str]:
    lines = [
        f"name:       {safe(vm.name)}",
        f"status:     {vm.status.value}" + (" (blocked)" if vm.blocked else ""),
        f"node:       {safe(vm.node or '-')}",
        f"enabled:    {'yes' if vm.enabled else 'no'}",
        f"uuid:       {safe(vm.uuid or '-')}",
        f"fail-count: {vm.fail_count}",
    ]
    if vm.last_failure:
        lines.append(f"failure:    {safe(vm.last_failure.summary())}")
    lines.append("disks:")
    for d in vm.disks:
        used = f", {humanize.naturalsize(d.used, binary=True)} used" if d.used is not None else ""
        lines.append(f"  {safe(d.image)}  {humanize.naturalsize(d.size, binary=True)}{used}")
    lines.append(f"snapshots:  {len(vm.snapshots)}")
    for snap in vm.snapshots:
        flags = [snap.kind]
        if snap.protected:
            flags.append("protected")
        if snap.missing_on:
            flags.append("missing on " + ", ".join(snap.missing_on))
        lines.append(f"  {safe(snap.name)}  {snap.created.isoformat() if snap.created else '-'}  ({', '.join(flags)})")
    if vm.metadata:
        lines.append("metadata:")
        lines += [f"  {safe(k)} = {safe(v)}" for k, v in sorted(vm.metadata.items())]
    if vm.linked_clones:
        lines.append(
            f"linked clones: {', '.join(safe(c) for c in vm.linked_clones)} (they depend on its snapshots:"
            " vm_manager cannot remove this VM while they exist; `vmconsole vm flatten CLONE` frees them)"
        )
    for problem in vm.problems:
        lines.append(f"problem:    {safe(problem)}")
    return lines
