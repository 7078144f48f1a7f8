"""``orgsync --help`` and every command's help, as the console script prints them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer

from orgsync.cli import app

ORGSYNC = str(Path(sys.executable).with_name("orgsync"))
COMMAND = typer.main.get_command(app)
SUBCOMMANDS = COMMAND.commands  # type: ignore[attr-defined]
COMMANDS = sorted(SUBCOMMANDS)


def help_of(*args: str) -> str:
    done = subprocess.run([ORGSYNC, *args, "--help"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_option_of_every_command_has_help_text() -> None:
    """No option is listed bare: each says what it does."""
    bare = [f"{name} {p.opts[0]}" for name in COMMANDS for p in SUBCOMMANDS[name].params
            if p.param_type_name == "option" and not (p.help or "").strip()]
    assert bare == []


def test_flags_are_shown_as_flags() -> None:
    """``--yes`` reads as a flag, not ``--yes <bool>``; options that take a value show it."""
    assert "<bool>" not in help_of()
    pages = {name: help_of(name) for name in COMMANDS}
    assert [n for n, page in pages.items() if "<bool>" in page] == []
    assert "-y, --yes" in pages["apply"]
    assert "Apply without asking." in pages["apply"]
    assert "--limit <int>" in pages["history"] or "-n, --limit <int>" in pages["history"]
