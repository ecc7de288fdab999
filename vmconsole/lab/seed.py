"""Demo VMs for the lab, in the SEAPATH layout, created through the service layer like any VM.

Tiny firmware-only guests (64 MiB, SeaBIOS printing on the serial console): some Started, one
Disabled, one enabled but stopped, one with snapshots, so a new user sees a living cluster at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vmconsole import config as configuration
from vmconsole.backends.proc import run
from vmconsole.core.services import Services
from vmconsole.core.vms import CreateSpec, VmOptions, plan_create
from vmconsole.lab.lab import Lab

GUEST_MEMORY_MIB = 64


@dataclass(frozen=True)
class DemoVm:
    name: str
    enable: bool = True
    start: bool = True
    data_disks: int = 0
    snapshots: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)


DEMO_VMS = (
    DemoVm("web1", metadata={"role": "frontend", "owner": "ops"}),
    DemoVm("web2", metadata={"role": "frontend", "owner": "ops"}),
    DemoVm("db1", data_disks=1, snapshots=("beforeupgrade", "nightly"), metadata={"role": "database"}),
    DemoVm("build1", enable=False, metadata={"role": "ci"}),
    DemoVm("spare1", start=False, metadata={"role": "spare"}),
)


def base_xml(lab: Lab, name: str, domain_type: str) -> str:
    """A disk-less domain: vmconsole adds the RBD disks. Serial output is logged in the lab."""
    guests = lab.paths.guests
    return f"""<domain type='{domain_type}' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{name}</name>
  <memory unit='MiB'>{GUEST_MEMORY_MIB}</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <features><acpi/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='pty'><log file='{guests}/{name}-serial.log' append='off'/><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <memballoon model='none'/>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-fw_cfg'/>
    <qemu:arg value='name=opt/vmconsole/sercon-port,file={lab.paths.sercon}'/>
    <qemu:arg value='-fw_cfg'/>
    <qemu:arg value='name=etc/sercon-port,file={lab.paths.sercon}'/>
  </qemu:commandline>
</domain>
"""


def disk_image(lab: Lab, size_mib: int = 64) -> Path:
    path = lab.paths.guests / f"blank-{size_mib}M.qcow2"
    if not path.exists():
        run(
            ["qemu-img", "create", "-q", "-f", "qcow2", str(path), f"{size_mib}M"],
            timeout=30,
            backend="qemu-img",
            check=True,
        )
    return path


def lab_options(**kwargs: object) -> VmOptions:
    # a firmware-only guest ignores ACPI shutdown: stop it at once instead of waiting out the timeout
    return VmOptions(pacemaker_params={"force_stop": "true"}, **kwargs)  # type: ignore[arg-type]


def seed(lab: Lab) -> Iterator[str]:
    state = lab.state()
    if state is None or not lab.is_up():
        from vmconsole.lab.lab import LabError

        raise LabError("the lab is not running", hint="`vmconsole lab up` first")
    config = configuration.load_file(lab.paths.config_file)
    services = Services(config)
    try:
        image = str(disk_image(lab))
        for demo in DEMO_VMS:
            if services.vm_exists(demo.name):
                yield f"{demo.name}: exists"
                continue
            spec = CreateSpec(
                name=demo.name,
                image=image,
                xml=base_xml(lab, demo.name, state.domain_type),
                data_disks=[image] * demo.data_disks,
                options=lab_options(enable=demo.enable, start=demo.start, metadata=demo.metadata),
            )
            services.run(plan_create(services, spec))
            for snapshot in demo.snapshots:
                services.rbd.group_snap_create(demo.name, snapshot)
            yield f"{demo.name}: created" + (" (disabled)" if not demo.enable else "")
    finally:
        services.close()
