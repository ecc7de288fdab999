"""The step builders that several operations share: enable a VM (its primitive and constraints in one
CIB transaction), disable it (stop, wait for its disks, delete the primitive, put it back on undo),
swap a fully built replacement in place of a VM, and the checks every plan repeats under its locks.

Every undo here acts on what its step recorded once it had made it, never on a name alone: a
primitive, image or group that existed before the task is never touched by its compensation.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from vmconsole.core.services import Services
from vmconsole.core.tasks import Step, StepContext
from vmconsole.domain import naming, validate
from vmconsole.domain.errors import ConflictError, NotFoundError, ValidationError
from vmconsole.domain.model import VmStatus
from vmconsole.domain.primitive_builder import ColocationSpec, PrimitiveSpec, build_enable_fragment
from vmconsole.domain.settings import VmSettings
from vmconsole.domain.units import duration_seconds

START_WAIT = 150.0  # the primitive's start op timeout (120 s) plus the scheduler's own delays
SETTLE_MARGIN = 30.0

# The only crm configure verbs a VM's stored extra configuration may replay: constraints. Anything
# else (a primitive, a property, `delete`...) is a command, not a setting of this VM.
CRM_CONFIG_VERBS = frozenset({"location", "colocation", "order"})


def require_vm(services: Services, vm: str) -> None:
    validate.existing_vm_name(vm)
    if not services.vm_exists(vm):
        raise NotFoundError(f"no VM named {vm!r}", field="name")


def primitive_spec(
    services: Services,
    vm: str,
    settings: VmSettings,
    *,
    start: bool,
    remote_nodes: Sequence[str],
    problems: list[str] | None = None,
) -> PrimitiveSpec:
    """The primitive vm_manager's ``enable_vm`` would build from these settings.

    With ``problems``, stored settings vm_manager accepts but Pacemaker or vmconsole cannot use (a
    reserved meta attribute, a utilization that is not an integer, a malformed host...) are left out,
    each with a line in ``problems``, instead of blocking the operation; without it, they raise."""
    values: dict[str, Any] = {
        "name": vm,
        "xml_dir": services.config.pacemaker.xml_dir,
        "stop_timeout": settings.stop_timeout or "30",
        "migrate_to_timeout": settings.migrate_to_timeout or "120",
        "migration_downtime": settings.migration_downtime or "0",
        "migration_user": settings.migration_user or "root",
        "live_migration": settings.live_migration,
        "priority": settings.priority or "0",
        "target_role": "Started" if start else "Stopped",
        "params": dict(settings.pacemaker_params),
        "meta": dict(settings.pacemaker_meta),
        "utilization": dict(settings.pacemaker_utilization),
        "remote_node": settings.remote_node,
        "remote_addr": settings.remote_node_address if settings.remote_node else None,
        "remote_port": settings.remote_node_port if settings.remote_node else None,
        "remote_connect_timeout": settings.remote_node_timeout if settings.remote_node else None,
        "pinned_host": settings.pinned_host,
        "preferred_host": settings.preferred_host,
        "banned_hosts": banned_nodes(services, settings, remote_nodes),
        "colocations": _existing_colocations(services, vm, settings, problems),
    }
    if problems is None:
        return PrimitiveSpec(**values)
    return _usable_spec(values, problems)


# What a stored value that cannot be used falls back to (vm_manager's defaults).
_FALLBACKS: dict[str, Any] = {
    "stop_timeout": "30",
    "migrate_to_timeout": "120",
    "migration_downtime": "0",
    "migration_user": "root",
    "priority": "0",
    "pinned_host": None,
    "preferred_host": None,
}
_RESERVED_META = frozenset(
    {"target-role", "is-managed", "remote-node", "remote-addr", "remote-port", "remote-connect-timeout"}
)
_REMOTE_FIELDS = ("remote_node", "remote_addr", "remote_port", "remote_connect_timeout")


def _usable_spec(values: dict[str, Any], problems: list[str]) -> PrimitiveSpec:
    for _ in range(len(values) + len(values["meta"]) + len(values["utilization"]) + 1):
        try:
            return PrimitiveSpec(**values)
        except ValidationError as exc:
            where = exc.field or ""
            if where in _FALLBACKS:
                values[where] = _FALLBACKS[where]
            elif where.startswith("utilization."):
                values["utilization"] = {k: v for k, v in values["utilization"].items() if k != where.split(".", 1)[1]}
            elif where == "meta":
                reserved = {"target-role", "is-managed", "remote-node", "remote-addr", "remote-port"}
                values["meta"] = {
                    k: v for k, v in values["meta"].items() if k not in reserved | {"remote-connect-timeout"}
                }
            elif where in _REMOTE_FIELDS:
                values.update(dict.fromkeys(_REMOTE_FIELDS))
            else:
                raise
            problems.append(f"stored setting {where}: {exc.message}; left out")
    return PrimitiveSpec(**values)


def _existing_colocations(
    services: Services, vm: str, settings: VmSettings, problems: list[str] | None
) -> tuple[ColocationSpec, ...]:
    """The VM's stored colocations whose resources all exist: Pacemaker refuses a reference to a
    removed resource, and a removed partner must not keep the VM from being enabled (the one rule for
    enable, update and every other path, so a colocation's id is the same everywhere). One another VM
    made (its key copied by vm_manager's clone) is not this VM's."""
    own = [c for c in settings.colocations if c.owner in (None, vm)]
    if not own:
        return ()
    known = services.pacemaker.resource_ids()
    kept = tuple(ColocationSpec(c.resources, c.strong) for c in own if all(r in known for r in c.resources))
    if problems is not None:
        problems += [
            f"colocation with {', '.join(c.resources)} not applied: no such resource now"
            for c in own
            if not all(r in known for r in c.resources)
        ]
    return kept


def banned_nodes(services: Services, settings: VmSettings, remote_nodes: Sequence[str]) -> tuple[str, ...]:
    """The nodes a VM is banned from, as vm_manager's ``enable_vm`` bans them: the observer (read from
    the configuration or SEAPATH's /etc/cluster.conf), then each remote node but the VM's own."""
    observer = services.observer()
    nodes = [observer] if observer else []
    nodes += [n for n in remote_nodes if n != settings.remote_node]
    return tuple(dict.fromkeys(nodes))


def check_crm_config_cmd(lines: Iterable[str], field: str = "crm_config_cmd") -> None:
    """Stored extra configuration is data: each line must be one constraint (location, colocation,
    order), never another crm configure command."""
    for line in lines:
        verb = line.split(maxsplit=1)[0] if line.strip() else ""
        if verb not in CRM_CONFIG_VERBS:
            raise ValidationError(
                f"{validate.show(line)} is not a constraint; only {', '.join(sorted(CRM_CONFIG_VERBS))}"
                " lines are replayed",
                field=field,
            )


def run_crm_config_cmd(services: Services, lines: Iterable[str], ctx: StepContext) -> list[str]:
    """Run a VM's stored ``crm configure`` lines as vm_manager does, skipping a line whose constraint id
    exists already (a re-enable or an update finds them from the last run, a clone its source's, which
    crm would refuse as an id in use). The ids it made."""
    existing = services.pacemaker.all_constraint_ids()
    made: list[str] = []
    for line in lines:
        words = line.split()
        if not words:
            continue
        constraint_id = words[1] if len(words) > 1 else ""
        if constraint_id in existing:
            ctx.log(f"{constraint_id} exists already: `crm configure {validate.show(line)}` not run again")
            continue
        services.pacemaker.crm_configure(line)
        made.append(constraint_id)
    return made


def remote_nodes(services: Services) -> list[str]:
    return list(services.crm_mon().remote_nodes)


def ungroup(services: Services, group: str, images: Sequence[str]) -> None:
    """Take images out of a group (tolerating those that are not in it, or a missing group)."""
    try:
        members = set(services.rbd.group_images(group))
    except NotFoundError:
        return
    for image in images:
        if image in members:
            services.rbd.group_remove_image(group, image)


# ---------------------------------------------------------------------------------------------- checks
def refuse_existing_images(services: Services, images: Iterable[str], *, field: str = "name") -> None:
    """A target image name that exists already (in a group or an orphan outside any) is refused:
    vmconsole never writes over, nor later removes, an image it did not make."""
    present = sorted(set(images) & set(services.rbd.image_ids()))
    if present:
        raise ConflictError(
            f"image{'s' if len(present) > 1 else ''} {', '.join(present)} already exist"
            f"{'s' if len(present) == 1 else ''} in pool {services.config.ceph.pool!r}",
            field=field,
            hint="vmconsole never writes over an image it did not make: remove or rename it first "
            f"(`rbd -p {services.config.ceph.pool} info {present[0]}` shows what it is)",
        )


def refuse_existing_group(services: Services, group: str, *, field: str = "name") -> None:
    if services.rbd.group_exists(group):
        raise ConflictError(f"a VM named {group!r} already exists", field=field)


def refuse_primitive(services: Services, vm: str, *, field: str = "name") -> None:
    """A Pacemaker resource of the VM's name that vmconsole did not add (vm_manager, another host)."""
    if vm in services.pacemaker.resource_ids():
        raise ConflictError(
            f"a Pacemaker resource named {vm!r} exists already",
            field=field,
            hint="another tool or host enabled it: look at `crm_mon` before going on",
        )


def refuse_linked_clones(services: Services, images: Iterable[str], what: str) -> None:
    """Disks with copy-on-write children cannot go: their clones still read from them."""
    for image in images:
        children = services.rbd.children(image)
        if children:
            raise ConflictError(
                f"{image} has linked clones: {', '.join(children)}; {what}",
                hint="flatten those clones first (`vmconsole vm flatten VM`) or remove them",
            )


def vm_images(services: Services, vm: str) -> list[str]:
    """The VM's disks: the images of its group, and its system image even outside the group."""
    images = {*services.rbd.group_images(vm)} if services.rbd.group_exists(vm) else set()
    if services.rbd.image_exists(naming.system_image(vm)):
        images.add(naming.system_image(vm))
    return sorted(images, key=lambda i: naming.disk_order(vm, i))


# ---------------------------------------------------------------------------------------------- enable
def enable_steps(
    services: Services, vm: str, *, start: bool, stop_if_start_fails: bool = False, point_of_no_return: bool = False
) -> list[Step]:
    """Steps that add the primitive and its constraints in one CIB transaction, then wait.

    ``stop_if_start_fails``: a VM that does not start is asked to stay stopped (target-role Stopped)
    with its primitive and Pacemaker's record of the failure kept; used where the VM is kept after a
    failure (``point_of_no_return``: from this step on, what the task built is the operator's).
    """

    def apply(ctx: StepContext) -> None:
        metadata = services.rbd.metadata(naming.system_image(vm))
        settings = VmSettings.from_metadata(metadata)
        check_crm_config_cmd(settings.crm_config_cmd, field="_crm_config_cmd")
        problems: list[str] = []
        spec = primitive_spec(
            services, vm, settings, start=start, remote_nodes=remote_nodes(services), problems=problems
        )
        for problem in problems:
            ctx.log(f"warning: {problem}")
        observer = services.observer()
        if observer and observer in (settings.pinned_host, settings.preferred_host):
            ctx.log(f"warning: {vm}'s stored placement names {observer}, the observer, where it is banned")
        if vm in services.primitives():
            raise ConflictError(f"{vm} is already enabled (it has a Pacemaker primitive)")
        # with extra crm commands, the primitive comes unmanaged and is managed once they ran, as
        # vm_manager orders it: their constraints exist before Pacemaker may start the VM
        extra = [line for line in settings.crm_config_cmd if line.strip()]
        services.pacemaker.modify(build_enable_fragment(replace(spec, managed=False) if extra else spec))
        ctx.data["enabled"] = True
        ctx.save()
        run_crm_config_cmd(services, extra, ctx)
        if extra:
            services.pacemaker.set_meta(vm, "is-managed", "true")
        bans = ", ".join(spec.banned_hosts)
        ctx.log(
            f"primitive {vm} (ocf:seapath:VirtualDomain) added, target-role {spec.target_role}"
            + (f"; banned from {bans}" if bans else "")
        )

    def unapply(ctx: StepContext) -> None:
        # only the primitive this step added: one another tool added meanwhile is not ours to delete. What
        # names the VM goes with it (nothing could before: Pacemaker refuses a reference to no resource)
        if ctx.data.get("enabled") and vm in services.primitives():
            stop_and_delete(services, vm, ctx)
            ctx.data["enabled"] = False

    def wait_started(ctx: StepContext) -> None:
        services.wait_status(vm, {VmStatus.STARTED}, START_WAIT, tick=ctx.check_cancel)
        ctx.log(f"{vm} is Started")

    def stay_stopped(ctx: StepContext) -> None:
        if vm in services.primitives():
            services.pacemaker.set_target_role(vm, "Stopped")

    steps = [Step("add the Pacemaker primitive", apply, unapply, point_of_no_return=point_of_no_return)]
    if start:
        steps.append(
            Step(f"start {vm} and wait for it", wait_started, stay_stopped if stop_if_start_fails else None, weight=2)
        )
    return steps


def stop_timeout(services: Services, vm: str) -> float:
    primitive = services.primitives().get(vm)
    op = primitive.operation("stop") if primitive else None
    return duration_seconds(op.timeout if op else None, 30.0) + SETTLE_MARGIN


def stop_and_delete(services: Services, vm: str, ctx: StepContext | None) -> None:
    """Stop the VM through Pacemaker, wait until its disks are released, then delete the primitive."""
    tick = ctx.check_cancel if ctx else None
    status, _ = services.vm_status(vm)
    if status is VmStatus.FAILED:
        services.pacemaker.cleanup(vm)  # this VM only (vm_manager cleaned up every resource)
    services.pacemaker.set_target_role(vm, "Stopped")
    services.wait_status(vm, {VmStatus.STOPPED}, stop_timeout(services, vm), fail_on=set(), tick=tick)
    services.wait_disks_released(vm, 30.0, tick=tick)
    services.pacemaker.delete_vm(vm)


def disable_step(services: Services, vm: str, *, point_of_no_return: bool = False) -> Step:
    def run(ctx: StepContext) -> None:
        if vm not in services.primitives():
            ctx.log(f"{vm} has no Pacemaker primitive")
            return
        status, _ = services.vm_status(vm)
        ctx.data["disabled_saved"] = services.pacemaker.vm_fragment(vm)
        ctx.data["disabled_was_running"] = status in (VmStatus.STARTED, VmStatus.STARTING)
        ctx.save()
        stop_and_delete(services, vm, ctx)
        ctx.data["disabled"] = True
        ctx.save()
        ctx.log(f"{vm} stopped and its primitive removed")

    def undo(ctx: StepContext) -> None:
        saved = ctx.data.get("disabled_saved")
        if saved and ctx.data.get("disabled") and vm not in services.primitives():
            services.pacemaker.modify_configuration(saved)
            if ctx.data.get("disabled_was_running"):
                services.pacemaker.set_target_role(vm, "Started")
            ctx.data["disabled"] = False
        elif saved and vm in services.primitives() and ctx.data.get("disabled_was_running"):
            # stopped but not deleted: started again as it was
            services.pacemaker.set_target_role(vm, "Started")
        else:
            return
        if ctx.data.get("disabled_was_running"):
            # back as it was: running again, not merely asked to
            services.wait_status(vm, {VmStatus.STARTED}, START_WAIT)

    return Step(
        f"stop {vm} and remove its Pacemaker primitive", run, undo, weight=2, point_of_no_return=point_of_no_return
    )


# ---------------------------------------------------------------------------------------------- swap
def vm_renames(services: Services, source: str, target: str) -> list[tuple[str, str]]:
    """The image renames that turn VM ``source`` into ``target`` (system_, then data_ disks)."""
    renames = []
    for image in services.rbd.group_images(source):
        if image == naming.system_image(source):
            renames.append((image, naming.system_image(target)))
        else:
            index = naming.data_index(source, image)
            if index is not None:
                renames.append((image, naming.data_image(target, index)))
    return renames


def rename_vm(services: Services, source: str, target: str, record: Callable[[list[str]], None] | None = None) -> None:
    """Rename a VM's group and images (system_<source> -> system_<target>, data disks alike).

    ``record`` gets each rename as it happens (the caller journals it), so a rename cut short can be
    reversed exactly."""
    for old, new in vm_renames(services, source, target):
        services.rbd.rename_image(old, new)
        if record is not None:
            record(["image", old, new])
    services.rbd.rename_group(source, target)
    if record is not None:
        record(["group", source, target])


def undo_renames(services: Services, done: list[list[str]]) -> None:
    """Reverse the recorded renames, last first (what a swap cut short had done)."""
    while done:
        kind, old, new = done[-1]
        if kind == "image":
            services.rbd.rename_image(new, old)
        else:
            services.rbd.rename_group(new, old)
        done.pop()


def undo_swap(services: Services, vm: str, data: dict[str, Any]) -> None:
    """Put the previous VM back from a swap's journalled renames (also from a killed process's)."""
    undo_renames(services, data.setdefault("swap_renames", []))
    data["swap_new_in"] = False
    data["swap_old_moved"] = False


def swap_steps(services: Services, vm: str, work: str) -> list[Step]:
    """Replace VM ``vm`` by the fully built ``work``: disable the old one, rename it aside, rename
    the new one in, then delete the old one (its group snapshots first). Until the deletion starts,
    undo puts everything back, rename by rename."""
    old = f"vmconsoleold{uuidlib.uuid4().hex[:8]}"

    def swap(ctx: StepContext) -> None:
        ctx.data["swap_old"] = old
        ctx.data["swap_work"] = work
        renames: list[list[str]] = ctx.data.setdefault("swap_renames", [])

        def record(rename: list[str]) -> None:
            renames.append(rename)
            ctx.save()

        rename_vm(services, vm, old, record)
        ctx.data["swap_old_moved"] = True
        rename_vm(services, work, vm, record)
        ctx.data["swap_new_in"] = True
        ctx.save()

    def unswap(ctx: StepContext) -> None:
        undo_swap(services, vm, ctx.data)
        ctx.save()

    def delete_old(ctx: StepContext) -> None:
        if services.rbd.group_exists(old):
            for snapshot in services.rbd.group_snapshots(old):
                services.rbd.group_snap_remove(old, snapshot)
            for image in services.rbd.group_images(old):
                services.rbd.group_remove_image(old, image)
                services.rbd.remove_image(image)
            services.rbd.remove_group(old)
        # the old VM's snapshot records went with its snapshots
        services.rbd.remove_object(naming.snapshot_records_object(vm))

    steps = []
    steps.append(
        disable_step(services, vm)
        if vm in services.primitives()
        else Step(f"check {vm} is not running", lambda ctx: None)
    )
    steps.append(Step(f"swap the new {vm} in place of the old one", swap, unswap, weight=0.3))
    steps.append(Step("delete the old VM's disks", delete_old, None, weight=0.5, point_of_no_return=True))
    return steps
