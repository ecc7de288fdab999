"""``v``: the VM's domain XML: the diff between ``_base_xml`` (what the operator gave) and ``xml``
(what the resource agent defines: disks, UUID added), and each XML, syntax highlighted.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Footer, Static, TabbedContent, TabPane

from vmconsole.domain import domain_xml
from vmconsole.domain.errors import VmConsoleError
from vmconsole.tui import gating, text
from vmconsole.tui.console import console_of
from vmconsole.tui.ops import DomainConfig
from vmconsole.tui.screens.form_base import FormScreen


def diff_lines(config: DomainConfig) -> list[str]:
    if not config.base_xml or not config.xml:
        return []
    try:
        return domain_xml.xml_diff(config.base_xml, config.xml, old_label="_base_xml", new_label="xml")
    except VmConsoleError as exc:
        return [f"# cannot compare: {exc}"]


class ConfigScreen(FormScreen[None]):
    HELP = """\
## Domain XML

**Diff**: `_base_xml` (the XML given at create/clone time) against `xml` (what the resource agent
defines: the RBD disks and the UUID added), both in canonical form. The other tabs show each XML.

**u** updates the VM in place: give a new XML file and/or change priority, stop timeout, live
migration or the preferred host, review the service's plan and diff, then confirm.
"""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss", "Back", id="config.back"),
        Binding("u", gating.act("update"), "Edit / update", id="config.update"),
    ]

    def __init__(self, config: DomainConfig) -> None:
        super().__init__(classes="form-screen")
        self.config = config

    def compose(self) -> ComposeResult:
        config = self.config
        lines = diff_lines(config)
        form = Vertical(classes="form fill", id="config-form")
        form.border_title = Text.assemble("Domain XML of ", text.plain(config.vm))
        with form, TabbedContent(initial="tab-diff"):
            with TabPane("Diff", id="tab-diff"), VerticalScroll(classes="xml-view"):
                if lines:
                    yield Static(text.highlighted("\n".join(lines), "diff", word_wrap=False))
                elif config.base_xml and config.xml:
                    yield Static(Text("no difference (canonical forms are equal)", style="dim"))
                else:
                    yield Static(
                        Text(
                            "missing: "
                            + ", ".join(k for k, v in (("_base_xml", config.base_xml), ("xml", config.xml)) if not v),
                            style="yellow",
                        )
                    )
            for key, value in (("xml", config.xml), ("_base_xml", config.base_xml)):
                with TabPane(key, id=f"tab-{key.strip('_')}"), VerticalScroll(classes="xml-view"):
                    if value:
                        yield Static(text.highlighted(value, "xml", line_numbers=True))
                    else:
                        yield Static(Text(f"the VM has no {key} metadata", style="dim"))
        yield Footer(compact=True)

    def show_config(self, config: DomainConfig) -> None:
        """Show a fresh read (after an update of the VM)."""
        self.config = config
        self.refresh(recompose=True)

    def action_act(self, name: str) -> None:
        console_of(self.app).perform(name, self.config.vm)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return gating.check_action(self.app, action, parameters)

    def on_key(self, event: events.Key) -> None:
        gating.refuse_disabled_key(self, event)
