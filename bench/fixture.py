"""The scale fixture: 50, 200 and 500 VMs in the SEAPATH layout, seeded in parallel, kept between runs.

Where it lives, so that nothing of it touches what the lab's other users see:

* Ceph: pool ``bench`` (made here when missing), one RBD namespace per size (``vms50``, ``vms200``,
  ``vms500``). Each VM ``scaleNNNN`` has a group, ``system_<vm>`` and ``data_<vm>_0`` (64 MiB, sparse),
  vm_manager's metadata on the system disk (a ~4 KB domain ``xml`` with both RBD disks, ``_base_xml``,
  settings, user keys) and 10 group snapshots, made by plain librbd (as vm_manager or any other tool
  would: vmconsole has no record of them, so their timestamps are the image's own).
* Pacemaker: one ``ocf:seapath:VirtualDomain`` primitive per VM of the size being measured (the
  primitives of one size at a time: switching sizes adds or deletes the difference in one CIB call).
  All are Stopped but the first ``STARTED`` (tiny firmware-only guests, as the lab's seed makes them,
  really running). The lab's agent reads ``xml`` from ``rbd_pool``'s default namespace, so those
  guests' XML is also kept on a small holder image each in ``bench``'s default namespace.
* ``BENCH_DIR`` (``/tmp/vmconsole-bench``) holds one vmconsole configuration per size: a copy of the
  lab's with ``[ceph] pool = "bench"`` and the size's namespace.

Seeding is idempotent: what exists is kept, what is missing is made (in parallel), so a second run
costs a few seconds. ``remove_primitives`` takes the fixture's primitives out of the CIB (the lab's
CIB is shared: leave it light); the pool stays for the next run.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lxml import etree

from vmconsole import config as configuration
from vmconsole.backends.pacemaker import PacemakerClient
from vmconsole.backends.proc import run
from vmconsole.backends.rbd import RbdSession
from vmconsole.config import Config
from vmconsole.domain.domain_xml import build_domain_xml
from vmconsole.domain.primitive_builder import PrimitiveSpec, build_primitive
from vmconsole.lab.lab import Lab
from vmconsole.lab.seed import base_xml

PREFIX = "scale"
POOL = "bench"
SIZES = (50, 200, 500)
SNAPSHOTS = 10
DISK_BYTES = 64 << 20
STARTED = 12  # the first VMs of every size are tiny guests really running
BENCH_DIR = Path("/tmp/vmconsole-bench")
# The VirtualDomain agent's monitor of a running guest (every 10 s) otherwise runs three crm_resource
# queries, each fetching the whole CIB (1.3 MB with 500 primitives): a dozen running guests kept
# pacemaker-based at half a core, slowing every CIB query of the shared lab (and of the benchmark).
NO_UTILIZATION_UPDATES = {
    "autoset_utilization_cpu": "false",
    "autoset_utilization_host_memory": "false",
    "autoset_utilization_hv_memory": "false",
}
SEED_WORKERS = 16


def vm_name(index: int) -> str:
    return f"{PREFIX}{index:04d}"


def namespace(size: int) -> str:
    return f"vms{size}"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _ceph(lab_config: Config, *args: str, timeout: float = 60) -> str:
    result = run(["ceph", "-c", lab_config.ceph.conf, *args], timeout=timeout, backend="ceph")
    if not result.ok:
        raise RuntimeError(f"ceph {' '.join(args)}: {result.error_text()}")
    return result.stdout


def _rbd(lab_config: Config, *args: str, timeout: float = 60) -> str:
    result = run(["rbd", "-c", lab_config.ceph.conf, *args], timeout=timeout, backend="ceph")
    if not result.ok:
        raise RuntimeError(f"rbd {' '.join(args)}: {result.error_text()}")
    return result.stdout


def ensure_pool(lab_config: Config) -> None:
    pools = _ceph(lab_config, "osd", "pool", "ls").split()
    if POOL not in pools:
        _ceph(lab_config, "osd", "pool", "create", POOL, "16", "16")
        _rbd(lab_config, "pool", "init", POOL)
    listed = json.loads(_rbd(lab_config, "namespace", "ls", POOL, "--format", "json") or "[]")
    existing = {entry["name"] for entry in listed}
    for size in SIZES:
        if namespace(size) not in existing:
            _rbd(lab_config, "namespace", "create", f"{POOL}/{namespace(size)}")


def size_config(lab_config: Config, size: int) -> tuple[Config, Path]:
    """The lab's configuration on the fixture of ``size`` VMs, and the file it is written to."""
    config = dataclasses.replace(
        lab_config, ceph=dataclasses.replace(lab_config.ceph, pool=POOL, namespace=namespace(size))
    )
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    path = BENCH_DIR / f"vmconsole-{size}.toml"
    text = configuration.render_toml(config)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return configuration.load_file(path), path


def _domain_xml(lab: Lab, vm: str, size: int, uuid: str, domain_type: str) -> tuple[str, str]:
    """(xml, _base_xml): a realistic domain (devices, features, both RBD disks), a few KB."""
    base = base_xml(lab, vm, domain_type)
    extra = f"""
    <interface type='network'><source network='default'/><model type='virtio'/>
      <mac address='52:54:00:{uuid[0:2]}:{uuid[2:4]}:{uuid[4:6]}'/></interface>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <input type='tablet' bus='usb'/>
    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'/>
    <video><model type='virtio' heads='1' primary='yes'/></video>
    <watchdog model='i6300esb' action='reset'/>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>"""
    description = (
        "<description>SEAPATH scale fixture guest. "
        + " ".join(f"line{i}: real-time IED {vm} bay {i} sampled values publisher/subscriber" for i in range(12))
        + "</description>\n  <cputune><vcpupin vcpu='0' cpuset='1'/><emulatorpin cpuset='0'/></cputune>"
    )
    full_base = base.replace("<memory", description + "\n  <memory", 1)
    started = int(vm[len(PREFIX) :]) < STARTED
    xml_base = full_base if started else full_base.replace("<memballoon", extra.strip() + "\n    <memballoon", 1)
    if started:
        # must start on the lab: no RBD disk (QEMU's key reaches the pool rbd only), no network
        return xml_base, xml_base
    xml = build_domain_xml(
        xml_base,
        name=vm,
        uuid=uuid,
        pool=POOL,
        namespace=namespace(size),
        system_image=f"system_{vm}",
        data_images=[f"data_{vm}_0"],
        disk_bus="virtio",
        monitors=[("127.0.0.1", 6789)],
        auth_user="libvirt",
        secret_uuid="1488152d-ebc4-47e1-8ef2-30b1492b33d6",
    )
    return xml, xml_base


def _metadata(lab: Lab, vm: str, size: int, domain_type: str) -> dict[str, str]:
    index = int(vm[len(PREFIX) :])
    uuid = f"{index:08x}-5ca1-4e00-8000-{size:012x}"
    xml, base = _domain_xml(lab, vm, size, uuid, domain_type)
    return {
        "vm_name": vm,
        "xml": xml,
        "_base_xml": base,
        "_disk_bus": "virtio",
        "_additional_disks": "1",
        "_migration_user": "root",
        "_stop_timeout": "30",
        "_priority": "0",
        "_pacemaker_params": json.dumps({"force_stop": "true", "rbd_pool": POOL}),
        "role": "ied" if index % 3 else "gateway",
        "owner": "substation-ops",
        "site": f"bay{index % 20}",
    }


def seed(lab: Lab, lab_config: Config, size: int, progress: Callable[[str], None] = log) -> float:
    """Make whatever is missing of the ``size`` fixture's Ceph side; seconds it took."""
    started = time.perf_counter()
    ensure_pool(lab_config)
    config, _path = size_config(lab_config, size)
    state = lab.state()
    domain_type = state.domain_type if state else "kvm"
    session = RbdSession(config.ceph)
    try:
        existing_groups = set(session.group_names())
        images = set(session.image_ids())
        names = [vm_name(i) for i in range(size)]

        def make(vm: str) -> int:
            made = 0
            system, data = f"system_{vm}", f"data_{vm}_0"
            if vm not in existing_groups:
                session.create_group(vm)
            members = set(session.group_images(vm))
            for image in (system, data):
                if image not in images:
                    session.create_image(image, DISK_BYTES)
                    made += 1
                if image not in members:
                    session.group_add(vm, image)
            metadata = session.metadata(system)
            if metadata.get("vm_name") != vm or "site" not in metadata:
                session.metadata_set_many(system, _metadata(lab, vm, size, domain_type))
            snaps = set(session.group_snapshots(vm))
            for index in range(SNAPSHOTS):
                if f"s{index:02d}" not in snaps:
                    session.group_snap_create(vm, f"s{index:02d}")
                    made += 1
            return made

        done = 0
        with ThreadPoolExecutor(max_workers=SEED_WORKERS, thread_name_prefix="seed") as pool:
            for made in pool.map(make, names):
                done += 1
                if made and done % 50 == 0:
                    progress(f"fixture {size}: {done}/{size} VMs")
    finally:
        session.close()
    _seed_holders(lab, lab_config, domain_type)
    return time.perf_counter() - started


def _seed_holders(lab: Lab, lab_config: Config, domain_type: str) -> None:
    """The started guests' XML where the lab's agent reads it (``bench``'s default namespace)."""
    holder_config = dataclasses.replace(lab_config.ceph, pool=POOL, namespace="")
    with RbdSession(holder_config) as session:
        images = set(session.image_ids())
        for index in range(STARTED):
            vm = vm_name(index)
            image = f"system_{vm}"
            if image not in images:
                session.create_image(image, 1 << 20)
            xml = _metadata(lab, vm, SIZES[-1], domain_type)["xml"]
            if session.metadata_get(image, "xml") != xml:
                session.metadata_set_many(image, {"xml": xml})


def fixture_primitive_ids(client: PacemakerClient) -> set[str]:
    return {r for r in client.resource_ids() if r.startswith(PREFIX) and r[len(PREFIX) :].isdigit()}


def set_primitives(lab_config: Config, size: int, *, wait: float = 900) -> float:
    """Make the CIB hold exactly the primitives of the ``size`` fixture (first ``STARTED`` Started);
    waits until Pacemaker is idle again (its probes of new primitives). Seconds it took."""
    started = time.perf_counter()
    client = PacemakerClient(lab_config.pacemaker)
    present = fixture_primitive_ids(client)
    wanted = {vm_name(i) for i in range(size)}
    extra = sorted(present - wanted)
    if extra:
        client.delete_primitives(extra)
    missing = sorted(wanted - present)
    if missing:
        fragment = etree.Element("configuration")
        resources = etree.SubElement(fragment, "resources")
        for vm in missing:
            index = int(vm[len(PREFIX) :])
            spec = PrimitiveSpec(
                name=vm,
                xml_dir=str(BENCH_DIR / "xml"),
                target_role="Started" if index < STARTED else "Stopped",
                params={"force_stop": "true", "rbd_pool": POOL, **NO_UTILIZATION_UPDATES},
            )
            resources.append(build_primitive(spec))
        client.modify_configuration(etree.tostring(fragment, encoding="unicode"))
    if extra or missing:
        client.wait_idle(wait)
    return time.perf_counter() - started


def remove_primitives(lab_config: Config, *, wait: float = 300) -> int:
    """Take every fixture primitive out of the CIB (the started guests stop first); how many went."""
    client = PacemakerClient(lab_config.pacemaker)
    present = sorted(fixture_primitive_ids(client))
    if present:
        for vm in present[:STARTED]:
            if int(vm[len(PREFIX) :]) < STARTED:
                client.set_target_role(vm, "Stopped")
        client.wait_idle(wait)
        client.delete_primitives(present)
        client.wait_idle(wait)
    return len(present)


def main() -> int:
    """``fixture.py seed SIZE...`` | ``fixture.py primitives SIZE`` | ``fixture.py remove``."""
    lab = Lab(log=log)
    if not lab.is_up():
        log("the lab is not running")
        return 9
    lab_config = configuration.load_file(lab.paths.config_file)
    command, *args = sys.argv[1:] or ["seed", *map(str, SIZES)]
    if command == "seed":
        for size in map(int, args):
            log(f"fixture {size}: {seed(lab, lab_config, size):.1f} s")
    elif command == "primitives":
        log(f"primitives {args[0]}: {set_primitives(lab_config, int(args[0])):.1f} s")
    elif command == "remove":
        log(f"removed {remove_primitives(lab_config)} fixture primitives")
    else:
        log(main.__doc__ or "")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
