"""The VM settings that create, clone, update and import share, in sections, every option the CLI
has (``vmconsole vm create --help``): in the cluster (enable, start, force), placement (pinned and
preferred host, picked from the cluster's nodes, clearable), live migration (user, timeout,
downtime), Pacemaker (stop timeout, priority, meta, params, utilization, extra constraints) and
user metadata.

Each field is checked as it is typed, by the same validators the service layer applies
(``vmconsole.domain.validate``), so the messages are the CLI's. What a field means when left empty
depends on the form: the default (create, import), the source's value (clone) or unchanged (update);
its placeholder says which. The service checks everything again when it plans the task.
"""

from __future__ import annotations

import enum
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Checkbox, Input, Label, Select, Static

from vmconsole.core.steps import check_crm_config_cmd
from vmconsole.core.vms import VmOptions
from vmconsole.core.vms.options import RESERVED_META, RESERVED_PARAMS
from vmconsole.domain import units, validate
from vmconsole.domain.errors import ValidationError
from vmconsole.tui import readable, text

KEEP = "\x00keep"  # a Select value: leave the setting as it is (the source's, or the current one)
CLEAR = "\x00clear"  # a Select value: no such setting (clears it)
MAPS = ("pacemaker_meta", "pacemaker_params", "pacemaker_utilization")


class Mode(enum.StrEnum):
    CREATE = "create"
    CLONE = "clone"
    UPDATE = "update"
    IMPORT = "import"

    @property
    def inherits(self) -> bool:
        """Empty fields keep a value (the source's, or the current one) instead of the default."""
        return self in (Mode.CLONE, Mode.UPDATE)


@dataclass(frozen=True)
class Field:
    name: str  # the VmOptions field (and the ``field=`` of its ValidationError)
    label: str
    default: str  # what an empty field means in create and import
    check: Callable[[str], object]  # raises ValidationError; the text is non-empty and stripped
    hint: str = ""


def _user(value: str) -> str:
    if not units.NAME_PATTERN.fullmatch(value):
        raise ValidationError("must be a user name (ASCII letters, digits, '_', '-', '.')", field="migration_user")
    return value


def _priority(value: str) -> str:
    if not value.lstrip("-+").isdigit():
        raise ValidationError(f"must be an integer, got {value!r}", field="priority")
    return value


def key_values(value: str, field: str) -> dict[str, str]:
    """``key=value key2="a b"`` (quoted like a shell word), as the CLI's repeated KEY=VALUE."""
    try:
        words = shlex.split(value)
    except ValueError as exc:
        raise ValidationError(f"cannot read it: {exc}", field=field) from exc
    pairs: dict[str, str] = {}
    for word in words:
        key, sep, item = word.partition("=")
        if not sep or not key:
            raise ValidationError(f"expected key=value, got {validate.show(word)}", field=field)
        pairs[key] = item
    return pairs


def _metadata(value: str) -> dict[str, str]:
    pairs = key_values(value, "metadata")
    return {
        validate.metadata_key(k, field="metadata"): validate.metadata_value(v, field=f"metadata.{k}")
        for k, v in pairs.items()
    }


def _map(name: str, reserved: Sequence[str]) -> Callable[[str], object]:
    return lambda value: validate.pacemaker_options(key_values(value, name), name, reserved=reserved)


def _crm(value: str) -> list[str]:
    lines = [line.strip() for line in value.split(";") if line.strip()]
    check_crm_config_cmd(lines)
    return lines


def _keys(value: str) -> list[str]:
    return [validate.metadata_key(k, field="remove") for k in value.split()]


TEXT_FIELDS: tuple[Field, ...] = (
    Field("migration_user", "Migr. user", "root", _user),
    Field("migrate_to_timeout", "Migr. timeout", "120 s", lambda v: validate.timeout_seconds(v, "migrate_to_timeout")),
    Field("migration_downtime", "Downtime", "0 ms", lambda v: validate.count(v, "migration_downtime"), "milliseconds"),
    Field("stop_timeout", "Stop timeout", "30 s", lambda v: validate.timeout_seconds(v, "stop_timeout")),
    Field("priority", "Priority", "0", _priority),
    Field("pacemaker_meta", "Meta", "none", _map("pacemaker_meta", RESERVED_META), "key=value …"),
    Field("pacemaker_params", "Params", "none", _map("pacemaker_params", RESERVED_PARAMS), "key=value …"),
    Field("pacemaker_utilization", "Utilization", "none", _map("pacemaker_utilization", ()), "key=value …"),
    Field("crm_config_cmd", "crm lines", "none", _crm, "location/colocation/order lines; ';' between them"),
    Field("metadata", "Metadata", "none", _metadata, "key=value … (user metadata)"),
    Field("remove_metadata", "Remove keys", "none", _keys, "metadata keys, space-separated"),
)
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Live migration", ("migration_user", "migrate_to_timeout", "migration_downtime")),
    ("Pacemaker", ("stop_timeout", "priority", "pacemaker_meta", "pacemaker_params", "pacemaker_utilization")),
    ("Extra constraints (need crmsh)", ("crm_config_cmd",)),
    ("User metadata", ("metadata", "remove_metadata")),
)
BY_NAME = {f.name: f for f in TEXT_FIELDS}


def _dom(name: str) -> str:
    return name.replace("_", "-")


class VmSettingsFields(Vertical):
    """The shared settings of a VM form; ``check`` shows each field's problem under it."""

    class Changed(Message):
        """A field changed: the form checks itself again."""

    def __init__(
        self,
        mode: Mode,
        nodes: Sequence[str],
        current: Mapping[str, Any] | None = None,
        *,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id, classes="vm-settings")
        self.mode = mode
        self.nodes = tuple(nodes)
        self.current: Mapping[str, Any] = current or {}  # the source's (clone) or the VM's (update) settings
        self.errors: dict[str, str] = {}

    # ------------------------------------------------------------------------------------ compose
    def _initial_map(self, name: str) -> str:
        values = self.current.get(name) or {}
        return " ".join(f"{k}={shlex.quote(str(v))}" for k, v in sorted(values.items())) if self.mode.inherits else ""

    def _now(self, field: Field) -> str:
        """The field's current (update) or inherited (clone) value, as an operator reads it."""
        now = self.current.get(field.name)
        return readable.value(field.name, now) if readable.is_set(now) else field.default

    def _placeholder(self, field: Field) -> str:
        """What an empty field means here: the default, the source's value, or unchanged."""
        if field.name in MAPS and self.mode.inherits:
            return "none: empty clears them" if not self.current.get(field.name) else ""
        if self.mode is Mode.UPDATE:
            base = f"unchanged (now {self._now(field)})"
        elif self.mode is Mode.CLONE and field.name not in ("metadata", "remove_metadata"):
            base = f"the source's ({self._now(field)})"
        else:
            base = f"default {field.default}" if field.default != "none" else "none"
        return f"{base}; {field.hint}" if field.hint and field.name not in MAPS else base

    def _host_options(self, name: str) -> list[tuple[Text, str]]:
        now = self.current.get(name)
        options: list[tuple[Text, str]] = []
        if self.mode.inherits:
            what = "unchanged" if self.mode is Mode.UPDATE else "the source's"
            options.append((Text(f"{what} ({text.safe(now) if now else 'not set'})"), KEEP))
        options.append((Text("not set" + (" (clears it)" if self.mode.inherits and now else "")), CLEAR))
        options += [(text.plain(node), node) for node in self.nodes]
        return options

    def _row(self, label: str, widget: Input | Select[str], name: str) -> ComposeResult:
        with Horizontal(classes="form-row"):
            yield Label(label, classes="form-label")
            yield widget
        yield Static("", id=f"vs-{_dom(name)}-error", classes="field-error")

    def compose(self) -> ComposeResult:
        mode = self.mode
        if mode in (Mode.CREATE, Mode.CLONE, Mode.IMPORT):
            yield Static(Text("In the cluster", style="bold"), classes="form-section")
            yield Checkbox("Enable: add its Pacemaker primitive", value=True, id="vs-enable")
            yield Checkbox("Start it (otherwise enabled with target-role Stopped)", value=True, id="vs-start")
        if mode in (Mode.CREATE, Mode.CLONE):
            yield Checkbox("Force: replace an existing VM of this name", value=False, id="vs-force")
            yield Static("", id="vs-force-note", classes="field-error")
        yield Static(Text("Placement", style="bold"), classes="form-section")
        start = KEEP if mode.inherits else CLEAR
        yield from self._row(
            "Pinned host",
            Select(self._host_options("pinned_host"), value=start, allow_blank=False, id="vs-pinned-host"),
            "pinned_host",
        )
        yield from self._row(
            "Preferred",
            Select(self._host_options("preferred_host"), value=start, allow_blank=False, id="vs-preferred-host"),
            "preferred_host",
        )
        yield Static(
            Text("Pinned wins over preferred (as in vm_manager). Only cluster members are offered.", style="dim"),
            classes="form-note",
        )
        for title, names in SECTIONS:
            yield Static(Text(title, style="bold"), classes="form-section")
            if title == "Live migration":
                yield from self._row(
                    "Live migr.",
                    Select(
                        self._live_options(), value=KEEP if mode.inherits else "off", allow_blank=False, id="vs-live"
                    ),
                    "live_migration",
                )
            for name in names:
                if name == "remove_metadata" and mode is not Mode.UPDATE:
                    continue
                field = BY_NAME[name]
                initial = self._initial_map(name) if name in MAPS else ""
                yield from self._row(
                    field.label, Input(initial, placeholder=self._placeholder(field), id=f"vs-{_dom(name)}"), name
                )
            if title == "User metadata" and mode is Mode.CLONE:
                yield Static(
                    Text("The source's user metadata is copied; these keys are added or replaced.", style="dim"),
                    classes="form-note",
                )

    def _live_options(self) -> list[tuple[Text, str]]:
        if self.mode.inherits:
            now = "on" if self.current.get("live_migration") else "off"
            what = "unchanged" if self.mode is Mode.UPDATE else "the source's"
            return [
                (Text(f"{what} ({now})"), KEEP),
                (Text("on: moves are live migrations"), "on"),
                (Text("off: moves stop and start the VM"), "off"),
            ]
        return [
            (Text("off (default): moves stop and start the VM"), "off"),
            (Text("on: moves are live migrations"), "on"),
        ]

    def on_mount(self) -> None:
        for error in self.query(".field-error"):
            error.display = False
        self.check()

    # ------------------------------------------------------------------------------------ reading
    def _text(self, name: str) -> str:
        return self.query_one(f"#vs-{_dom(name)}", Input).value.strip()

    def _select(self, widget_id: str) -> str:
        return str(self.query_one(f"#{widget_id}", Select).value)

    def _changed_map(self, name: str) -> bool:
        return self._text(name) != self._initial_map(name).strip()

    @property
    def enable(self) -> bool:
        return self.mode is Mode.UPDATE or self.query_one("#vs-enable", Checkbox).value

    @property
    def force(self) -> bool:
        return self.mode in (Mode.CREATE, Mode.CLONE) and self.query_one("#vs-force", Checkbox).value

    def _host(self, name: str) -> str | None:
        value = self._select(f"vs-{_dom(name)}")
        if value == KEEP:
            return None
        if value == CLEAR:
            # create/import: nothing given; clone/update: "" clears the inherited value
            return "" if self.mode.inherits else None
        return validate.node_name(value, self.nodes, field=name)

    def _field_value(self, name: str) -> object:
        """The checked value of a text field, or None when it is left to its default/inherited value."""
        raw = self._text(name)
        if name in MAPS and self.mode.inherits:
            if not self._changed_map(name):
                return None
            return BY_NAME[name].check(raw) if raw else {}
        if not raw:
            return None
        return BY_NAME[name].check(raw)

    def check(self) -> bool:
        """Check every field; show each problem under its field; True when all are fine."""
        self.errors = {}
        probes: list[tuple[str, Callable[[], object]]] = [
            ("pinned_host", lambda: self._host("pinned_host")),
            ("preferred_host", lambda: self._host("preferred_host")),
        ]
        for field in TEXT_FIELDS:
            if field.name == "remove_metadata" and self.mode is not Mode.UPDATE:
                continue
            probes.append((field.name, lambda name=field.name: self._field_value(name)))  # type: ignore[misc]
        for name, probe in probes:
            try:
                probe()
            except ValidationError as exc:
                self.errors[name] = exc.message
            widget = self.query_one(f"#vs-{_dom(name)}-error", Static)
            widget.update(text.plain(self.errors.get(name, "")))
            widget.display = name in self.errors
        if self.mode in (Mode.CREATE, Mode.CLONE, Mode.IMPORT):
            self.query_one("#vs-start", Checkbox).disabled = not self.query_one("#vs-enable", Checkbox).value
        if self.mode in (Mode.CREATE, Mode.CLONE):
            note = self.query_one("#vs-force-note", Static)
            note.update(
                Text(
                    "An existing VM of this name is replaced: the new one is built aside, then swapped in; the old"
                    " one's disks, snapshots and configuration are deleted. You type the name to confirm.",
                )
                if self.force
                else ""
            )
            note.display = self.force
        return not self.errors

    def options(self) -> VmOptions:
        """The settings as the service takes them; ValidationError (the first problem) otherwise."""
        live = self._select("vs-live")
        values: dict[str, Any] = {
            "pinned_host": self._host("pinned_host"),
            "preferred_host": self._host("preferred_host"),
            "live_migration": None
            if live == KEEP
            else True
            if live == "on"
            else (False if self.mode.inherits else None),
        }
        for field in TEXT_FIELDS:
            if field.name in ("remove_metadata", "crm_config_cmd"):
                continue
            values[field.name] = self._field_value(field.name)
        crm = self._field_value("crm_config_cmd")
        enable = self.enable
        start = self.mode is Mode.UPDATE or (enable and self.query_one("#vs-start", Checkbox).value)
        for name in ("stop_timeout", "migrate_to_timeout", "migration_downtime", "priority", "migration_user"):
            if values[name] is not None:
                values[name] = self._text(name)  # as typed: the service normalises it (30s -> 30)
        return VmOptions(
            **values,
            crm_config_cmd=tuple(crm) if isinstance(crm, list) else (),
            enable=enable,
            start=start,
        )

    def clears(self) -> dict[str, bool]:
        """For a clone: the source's maps to drop (a map edited in the form replaces the source's)."""
        return {f"clear_{name}": self._changed_map(name) for name in MAPS}

    def remove_metadata(self) -> tuple[str, ...]:
        value = self._field_value("remove_metadata") if self.mode is Mode.UPDATE else None
        return tuple(value) if isinstance(value, list) else ()

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    def changed(self) -> None:
        self.check()
        self.post_message(self.Changed())
