"""Open the interactive console (the Textual app), on the configured cluster or the local lab."""

from __future__ import annotations

import argparse

from vmconsole.cli.common import load_config


def run_console(args: argparse.Namespace) -> int:
    config = load_config(args)
    from vmconsole.tui.app import VmConsoleApp

    app = VmConsoleApp(
        config, read_only=bool(args.read_only) or config.console.read_only, keymap=config.console.keys or None
    )
    if config.console.theme:
        app.theme = config.console.theme
    app.run()
    return int(app.return_code or 0)
