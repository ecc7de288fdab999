"""Pacemaker adapter: its XML interfaces only (crm_mon, cibadmin, crm_resource, crm_attribute).

Never crmsh (1.5 s of start-up per call) and never human-readable output. Every call has a timeout.
"""

from __future__ import annotations

from collections.abc import Sequence

from vmconsole.backends.proc import Completed, run
from vmconsole.config import PacemakerSection
from vmconsole.domain.errors import BackendError

BACKEND = "pacemaker"


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
        self, argv: Sequence[str], *, check: bool = True, timeout: float | None = None, input_text: str | None = None
    ) -> Completed:
        return run(argv, timeout=timeout or self.config.timeout, backend=BACKEND, check=check, input_text=input_text)

    # ------------------------------------------------------------------ reading
    def crm_mon_xml(self) -> str:
        """The cluster status as XML (raises BackendError when the cluster does not answer)."""
        result = self._run([self.config.crm_mon, "--output-as=xml", "--inactive"], check=False)
        if result.stdout.strip().startswith("<"):
            return result.stdout  # rc 102 "not connected" comes as XML too: the parser reports it
        raise BackendError(BACKEND, f"crm_mon failed: {result.error_text()}")

    def cib_version(self) -> str:
        """``admin_epoch.epoch.num_updates`` of the CIB: changes whenever configuration or status does."""
        from vmconsole.domain import xmlsafe

        text = self._run([self.config.cibadmin, "--query", "--xpath", "/cib", "--no-children"]).stdout
        root = xmlsafe.parse(text, what="CIB header")
        return ".".join(root.get(k, "?") for k in ("admin_epoch", "epoch", "num_updates"))

    def operations_xml(self) -> str:
        """crm_mon's XML with every resource's operation history (what diagnose shows)."""
        return self._run([self.config.crm_mon, "--output-as=xml", "--include=operations"]).stdout

    def why(self, resource: str) -> str:
        """Pacemaker's own explanation of where a resource can run: text for people, never parsed."""
        result = self._run([self.config.crm_resource, "--why", "--resource", resource], check=False, timeout=10)
        return result.stdout + result.stderr

    def cib_xml(self) -> str:
        return self._run([self.config.cibadmin, "--query"]).stdout

    # ------------------------------------------------------------------ writing
    def modify_configuration(self, xml_text: str) -> None:
        """Create or update elements of the configuration section, all in one CIB transaction."""
        # through stdin: a large change would not fit in an argument list
        self._run([self.config.cibadmin, "--modify", "--scope", "configuration", "--xml-pipe"], input_text=xml_text)

    def replace_configuration(self, xml_text: str) -> None:
        """Replace the whole configuration section in one CIB transaction."""
        self._run([self.config.cibadmin, "--replace", "--scope", "configuration", "--xml-pipe"], input_text=xml_text)

    def delete_vm(self, vm: str) -> None:
        """Remove a VM's primitive and every constraint naming it, in one CIB transaction."""
        name = _xpath_literal(vm)
        coloc_prefixes = (
            _xpath_literal(f"colocation-{vm}-with"),
            _xpath_literal(f"colocation-strong-{vm}-with"),
        )
        xpath = (
            f"//resources//primitive[@id={name}]"
            f" | //constraints/rsc_location[@rsc={name}]"
            f" | //constraints/rsc_colocation[@rsc={name} or @with-rsc={name}"
            f" or starts-with(@id, {coloc_prefixes[0]}) or starts-with(@id, {coloc_prefixes[1]})]"
        )
        # --force: cibadmin insists on it for --delete-all, the xpath above is the safety net
        self._run([self.config.cibadmin, "--delete-all", "--force", "--xpath", xpath])

    def delete_primitives(self, resource_ids: Sequence[str]) -> None:
        """Remove primitives (not their constraints), one CIB transaction per hundred."""
        for start in range(0, len(resource_ids), 100):
            xpath = " | ".join(
                f"//resources/primitive[@id={_xpath_literal(rid)}]" for rid in resource_ids[start : start + 100]
            )
            self._run([self.config.cibadmin, "--delete-all", "--force", "--xpath", xpath])

    def crm_configure(self, command: str) -> None:
        """One `crm configure` command from a VM's stored extra configuration (needs crmsh)."""
        import shlex

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

    def move(self, resource: str, node: str) -> None:
        """Ask Pacemaker to move (or live-migrate) a resource: adds the cli-prefer constraint."""
        self._run([self.config.crm_resource, "--move", "--resource", resource, "--node", node])

    def clear_move(self, resource: str) -> None:
        self._run([self.config.crm_resource, "--clear", "--resource", resource])

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
