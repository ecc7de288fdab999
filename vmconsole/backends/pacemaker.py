"""Pacemaker adapter: its XML interfaces only (crm_mon, cibadmin, crm_resource, crm_attribute).

Never crmsh (1.5 s of start-up per call) and never human-readable output. Every call has a timeout.
"""

from __future__ import annotations

import random
import shlex
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from lxml import etree

from vmconsole.backends import cib, crm_mon
from vmconsole.backends.proc import Completed, run
from vmconsole.config import PacemakerSection
from vmconsole.domain import xmlsafe
from vmconsole.domain.errors import BackendError, ConflictError
from vmconsole.domain.pacemaker_status import CrmMonSnapshot, OperationHistoryEntry
from vmconsole.domain.primitive import PrimitiveConfig

BACKEND = "pacemaker"
# A CIB patch applies only to the CIB as read, status counter included: on a busy cluster each status
# update between the read and the patch makes it read and try again.
CIB_PATCH_TRIES = 40
CIB_OLD_DATA = 103  # cibadmin: "Update was older than existing configuration"


def _xpath_literal(value: str) -> str:
    """Quote a value for an XPath expression (names are validated, but never trust that here)."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise BackendError(BACKEND, f"cannot quote {value!r} for an XPath expression")


class PacemakerClient:
    def __init__(self, config: PacemakerSection) -> None:
        self.config = config

    def _run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float | None = None,
        input_text: str | None = None,
        env: dict[str, str] | None = None,
    ) -> Completed:
        return run(
            argv, timeout=timeout or self.config.timeout, backend=BACKEND, check=check, input_text=input_text, env=env
        )

    # ------------------------------------------------------------------ reading
    def crm_mon_xml(self, cib_text: str | None = None) -> str:
        """The cluster status as XML (raises BackendError when the cluster does not answer).

        With ``cib_text`` (a whole CIB, ``cibadmin --query``), crm_mon computes the status from that CIB
        on its standard input instead of fetching it again from the CIB daemon: the same answer for the
        same CIB, without the daemon serving the whole CIB a second time."""
        result = self._run(
            [self.config.crm_mon, "--output-as=xml", "--inactive"],
            check=False,
            input_text=cib_text,
            env=None if cib_text is None else {"CIB_file": "/dev/stdin"},
        )
        if result.stdout.strip().startswith("<"):
            return result.stdout  # rc 102 "not connected" comes as XML too: the parser reports it
        raise BackendError(BACKEND, f"crm_mon failed: {result.error_text()}")

    def cib_header(self) -> dict[str, str]:
        """The CIB element's attributes: its version, quorum, the DC, the schema."""
        text = self._run([self.config.cibadmin, "--query", "--xpath", "/cib", "--no-children"]).stdout
        return cib.attributes(xmlsafe.parse(text, what="CIB header"))

    def cib_status_xml(self) -> str:
        """The CIB's status section alone (a fifth of a big cluster's CIB)."""
        return self._run([self.config.cibadmin, "--query", "--scope", "status"]).stdout

    def operations_xml(self) -> str:
        """crm_mon's XML with every resource's operation history (what diagnose shows)."""
        return self._run([self.config.crm_mon, "--output-as=xml", "--include=operations"]).stdout

    def why(self, resource: str) -> str:
        """Pacemaker's own explanation of where a resource can run: text for people, never parsed."""
        result = self._run([self.config.crm_resource, "--why", "--resource", resource], check=False, timeout=10)
        return result.stdout + result.stderr

    def cib_xml(self) -> str:
        return self._run([self.config.cibadmin, "--query"]).stdout

    def status(self, cib_text: str | None = None) -> CrmMonSnapshot:
        """The cluster status (crm_mon), parsed; of ``cib_text`` when given (see ``crm_mon_xml``)."""
        return crm_mon.parse_crm_mon(self.crm_mon_xml(cib_text))

    def primitives(self) -> dict[str, PrimitiveConfig]:
        """Every primitive of the CIB with the constraints that name it, by id."""
        return cib.parse_cib_primitives(self.cib_xml())

    def resource_ids(self) -> set[str]:
        """Every resource id of the CIB (primitives, groups, clones...)."""
        return cib.resource_ids(self.cib_xml())

    def operation_history(self, resource: str) -> list[OperationHistoryEntry]:
        """The resource's operation history on every node."""
        return crm_mon.parse_operation_history(self.operations_xml(), resource)

    def vm_fragment(self, vm: str) -> str:
        """The VM's primitive and constraints as they are now (``modify_configuration`` puts them back)."""
        return cib.vm_fragment(self.cib_xml(), vm)

    def vm_elements(self, vm: str, constraint_ids: set[str]) -> tuple[str | None, list[str]]:
        """The VM's primitive and those of its constraints (by id) that exist now, as XML texts."""
        return cib.vm_elements(self.cib_xml(), vm, constraint_ids)

    # ------------------------------------------------------------------ writing
    def modify_configuration(self, xml_text: str) -> None:
        """Create or update elements of the configuration section, all in one CIB transaction."""
        # through stdin: a large change would not fit in an argument list
        self._run([self.config.cibadmin, "--modify", "--scope", "configuration", "--xml-pipe"], input_text=xml_text)

    def modify(self, fragment: etree._Element) -> None:
        """``modify_configuration`` of a ``<configuration>`` fragment built by the domain's builders."""
        self.modify_configuration(etree.tostring(fragment, encoding="unicode"))

    def update_vm(
        self,
        vm: str,
        primitive: etree._Element,
        remove_ids: set[str],
        add: list[etree._Element],
        *,
        tries: int = CIB_PATCH_TRIES,
    ) -> bool:
        """Change only the VM's elements (its primitive; the constraints of ``remove_ids`` out, ``add``
        in) in one CIB patch that applies to the CIB as read or not at all. A status update between the
        read and the patch makes it read again; the VM's own elements changed by someone else
        meanwhile make it fail (ConflictError), never vanish. False when the VM has no primitive."""
        for _ in range(tries):
            before = self.cib_xml()
            after = cib.with_vm_elements(before, vm, primitive, remove_ids, add)
            if after is None:
                return False
            if self._patch(before, after):
                return True
            time.sleep(random.uniform(0.05, 0.3))  # noqa: S311 (jitter; a busy cluster: let the status updates pass)
        raise ConflictError(
            f"the CIB kept changing while {vm}'s primitive was being updated ({tries} tries)",
            hint="try again when the cluster is quieter",
        )

    def restore_vm(
        self, vm: str, primitive: str, remove_ids: set[str], constraints: list[str], *, target_role: str | None = None
    ) -> bool:
        """Put back the VM's elements saved by ``vm_elements`` (the undo of ``update_vm``); with
        ``target_role``, the primitive comes back with that role instead of the saved one."""
        element = xmlsafe.parse(primitive, what="saved primitive")
        return self.update_vm(
            vm,
            cib.with_target_role(element, target_role) if target_role else element,
            remove_ids,
            [xmlsafe.parse(c, what="saved constraint") for c in constraints],
        )

    def _patch(self, before: str, after: str) -> bool:
        """Apply the difference between two CIB documents; False when the CIB is no longer ``before``."""
        with tempfile.TemporaryDirectory(prefix="vmconsole-cib-") as directory:
            old, new = Path(directory, "before.xml"), Path(directory, "after.xml")
            old.write_text(before)
            new.write_text(after)
            diff = self._run([self.config.crm_diff, "--original", str(old), "--new", str(new)], check=False)
            if diff.returncode not in (0, 1) or not diff.stdout.strip():
                raise BackendError(BACKEND, f"crm_diff failed: {diff.error_text()}")
            patch = Path(directory, "patch.xml")
            patch.write_text(diff.stdout)
            result = self._run([self.config.cibadmin, "--patch", "--xml-file", str(patch)], check=False)
        if result.ok:
            return True
        if result.returncode == CIB_OLD_DATA:
            return False
        raise BackendError(BACKEND, f"cibadmin --patch failed: {result.error_text()}")

    def delete_vm(self, vm: str, *, tries: int = CIB_PATCH_TRIES) -> None:
        """Remove a VM's primitive and every constraint naming it, in one CIB patch; another VM's
        colocation with it only loses it (see ``cib.without_vm``)."""
        for _ in range(tries):
            before = self.cib_xml()
            after = cib.without_vm(before, vm)
            if after is None or self._patch(before, after):
                return
            time.sleep(random.uniform(0.05, 0.3))  # noqa: S311 (jitter, not a secret)
        raise ConflictError(
            f"the CIB kept changing while {vm}'s primitive was being removed ({tries} tries)",
            hint="try again when the cluster is quieter",
        )

    def delete_primitives(self, resource_ids: Sequence[str]) -> None:
        """Remove primitives (not their constraints), one CIB transaction per hundred."""
        for start in range(0, len(resource_ids), 100):
            xpath = " | ".join(
                f"//resources/primitive[@id={_xpath_literal(rid)}]" for rid in resource_ids[start : start + 100]
            )
            self._run([self.config.cibadmin, "--delete-all", "--force", "--xpath", xpath])

    def crmsh_installed(self) -> bool:
        """Is crmsh (``crm``) here? A VM's stored extra configuration commands need it."""
        return shutil.which("crm") is not None

    def crm_configure(self, command: str) -> None:
        """One `crm configure` command from a VM's stored extra configuration (needs crmsh)."""
        self._run(["crm", "configure", *shlex.split(command)], timeout=60)

    def set_meta(self, resource: str, name: str, value: str) -> None:
        self._run(
            [
                self.config.crm_resource,
                "--resource",
                resource,
                "--meta",
                "--set-parameter",
                name,
                f"--parameter-value={value}",
            ]
        )

    def delete_meta(self, resource: str, name: str) -> None:
        result = self._run(
            [self.config.crm_resource, "--resource", resource, "--meta", "--delete-parameter", name],
            check=False,
        )
        if not result.ok and "not found" not in (result.stderr + result.stdout).lower():
            raise BackendError(BACKEND, f"crm_resource --delete-parameter {name}: {result.error_text()}")

    def set_target_role(self, resource: str, role: str) -> None:
        self.set_meta(resource, "target-role", role)

    def cleanup(self, resource: str, node: str | None = None) -> None:
        argv = [self.config.crm_resource, "--cleanup", "--resource", resource]
        if node:
            argv += ["--node", node]
        self._run(argv)

    def refresh(self, resource: str) -> None:
        self._run([self.config.crm_resource, "--refresh", "--resource", resource])

    def all_constraint_ids(self) -> set[str]:
        """The id of every constraint on the cluster (whatever it names)."""
        return cib.constraint_ids(self.cib_xml())

    def delete_constraint(self, constraint_id: str) -> None:
        """Remove one constraint by its id (nothing when it is not there)."""
        xpath = f"//constraints/*[@id={_xpath_literal(constraint_id)}]"
        self._run([self.config.cibadmin, "--delete", "--xpath", xpath])

    def move(self, resource: str, node: str) -> None:
        """Ask Pacemaker to move (or live-migrate) a resource: adds (or moves) the cli-prefer constraint."""
        self._run([self.config.crm_resource, "--move", "--resource", resource, "--node", node])

    def clear_move(self, resource: str) -> None:
        """Remove the resource's own preference, ``cli-prefer-<resource>``, and nothing else.

        Not ``crm_resource --clear``: without ``--node`` it removes every ``cli-ban-*`` of the resource
        too (the observer's ban, the remote nodes' bans that vm_manager and vmconsole add)."""
        xpath = (
            f"//constraints/rsc_location[@id={_xpath_literal(f'cli-prefer-{resource}')}"
            f" and @rsc={_xpath_literal(resource)}]"
        )
        self._run([self.config.cibadmin, "--delete", "--xpath", xpath])

    def set_standby(self, node: str, standby: bool) -> None:
        self._run(
            [
                self.config.crm_attribute,
                "--node",
                node,
                "--name",
                "standby",
                "--update",
                "on" if standby else "off",
            ]
        )

    def force_stop(self, resource: str) -> None:
        self._run([self.config.crm_resource, "--force-stop", "--resource", resource], timeout=120)

    def wait_idle(self, timeout: float) -> bool:
        """Wait for the cluster to finish its pending actions; False when it did not in time."""
        result = self._run(
            [self.config.crm_resource, "--wait", f"--timeout={int(timeout)}s"],
            check=False,
            timeout=timeout + 10,
        )
        return result.ok
