"""Every ``hail-emr-lab`` command, subcommand and option explains itself.

Walks the real argparse parsers of every command (the ones ``hail-emr-lab`` builds), so a flag
added later without help text fails here; and runs the commands that need arguments with none.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from hail_emr_lab.cli import COMMANDS, build_parser, needs_arguments


def walk(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every subcommand parser under it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from walk(sub)


def all_parsers() -> list[argparse.ArgumentParser]:
    return [p for name in COMMANDS for p in walk(build_parser(name))]


def test_every_option_and_subcommand_has_help():
    missing = []
    for parser in all_parsers():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                documented = {a.dest for a in action._choices_actions if a.help}
                missing += [f"{parser.prog} {name}" for name in action.choices if name not in documented]
                continue
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{parser.prog} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, f"without help text: {missing}"


def test_optional_positionals_are_not_reported_as_required():
    # argparse marks a nargs="*" positional without a default as required and then names it in
    # "the following arguments are required", although it may be left out.
    wrong = [f"{p.prog} {a.dest}" for p in all_parsers() for a in p._actions
             if not a.option_strings and a.nargs in ("*", "?") and a.required]
    assert not wrong, wrong


def test_only_commands_that_cannot_run_bare_show_help_instead():
    assert {name for name in COMMANDS if needs_arguments(build_parser(name))} == {"sync", "lifecycle", "jobs"}


@pytest.mark.parametrize("name", ["sync", "lifecycle", "jobs"])
def test_a_command_that_needs_arguments_shows_its_help_when_given_none(name):
    res = subprocess.run([sys.executable, "-m", "hail_emr_lab", name], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert f"usage: hail-emr-lab {name}" in res.stdout and "-h, --help" in res.stdout, res.stdout
    assert "required" not in res.stdout + res.stderr, res.stdout + res.stderr
    assert "Traceback" not in res.stderr


def test_bare_command_lists_the_commands_and_is_not_success():
    bare = subprocess.run([sys.executable, "-m", "hail_emr_lab"], capture_output=True, text=True, timeout=120)
    asked = subprocess.run([sys.executable, "-m", "hail_emr_lab", "--help"], capture_output=True, text=True, timeout=120)
    assert bare.returncode == 2 and asked.returncode == 0
    assert bare.stdout == asked.stdout and "usage: hail-emr-lab COMMAND" in bare.stdout
    assert all(name in bare.stdout for name in COMMANDS)


def test_sync_without_paths_names_only_what_is_missing():
    res = subprocess.run([sys.executable, "-m", "hail_emr_lab", "sync", "--quiet"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2
    assert "the following arguments are required: action" in res.stderr, res.stderr
    assert "paths" not in res.stderr.splitlines()[-1], res.stderr


def test_every_hail_magic_option_has_help():
    # The %hail subcommands' parsers (from the magic's registry) are walked the same way, so a
    # flag added to a magic without help text fails here too.
    from hail_emr_lab.notebook.magics.registry import REGISTRY

    parsers = [entry.parser for entry in REGISTRY if not entry.raw]  # raw: the command line's jobs parser
    assert len(parsers) >= 8
    missing = [f"{p.prog} {'/'.join(a.option_strings) or a.dest}" for p in parsers for a in p._actions
               if not isinstance(a, argparse._HelpAction) and not a.help]
    assert not missing, f"without help text: {missing}"


def test_readme_names_every_command():
    # The README's list of commands is where a newcomer looks first: a command added later
    # without a word there fails here.
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert not [name for name in COMMANDS if f"`{name}`" not in readme]
