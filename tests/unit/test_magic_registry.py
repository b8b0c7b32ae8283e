"""The ``%hail`` surface comes from one registry: dispatch, ``%hail help``, each ``--help`` and
the ``%hail connect`` flags (which are the fields of ``ConnectOptions``).

Plain calls on the registry and its parsers, plus an in-process IPython shell (no kernel, no
Livy) for what the magic prints. Running cells needs a session: tests/integration covers that.
"""

from __future__ import annotations

import argparse
import dataclasses
import re

import pytest
from IPython.core.error import UsageError

from hail_emr_lab.notebook.connect import ConnectOptions, connect_flags
from hail_emr_lab.notebook.magics.args import HelpShown
from hail_emr_lab.notebook.magics.registry import REGISTRY, help_text


def test_every_subcommand_has_help_a_parser_and_a_handler():
    entries = list(REGISTRY)
    assert len({e.name for e in entries}) == len(entries) >= 19
    for entry in entries:
        assert entry.summary and "\n" not in entry.summary, entry.name
        assert isinstance(entry.parser, argparse.ArgumentParser), entry.name
        assert callable(entry.handler), entry.name
        assert entry.parser.description, entry.name  # what --help says first


def test_help_lists_exactly_the_registry():
    text = help_text(REGISTRY)
    listed = re.findall(r"(?m)^  (%%?hail(?: [a-z]+)?)\b", text)
    assert listed == [entry.typed for entry in REGISTRY]
    for entry in REGISTRY:
        assert entry.summary.split()[0] in text


@pytest.mark.parametrize("entry", [e for e in REGISTRY if not e.raw], ids=lambda e: e.typed)
def test_each_subcommand_help_is_its_parser_help(entry, capsys):
    with pytest.raises(HelpShown):
        entry.parse("--help")
    out = capsys.readouterr().out
    assert out == entry.parser.format_help()
    assert out.startswith(f"usage: {entry.typed}") and entry.summary in out


def test_routing_follows_the_registry():
    for name in REGISTRY.line_names():
        assert REGISTRY.route(f"{name} --x", None) == (REGISTRY.get(name), "--x")
    assert REGISTRY.route("-o df -n 5", "code") == (REGISTRY.cell, "-o df -n 5")
    assert REGISTRY.route("sql -n 3", "SELECT 1") == (REGISTRY.get("sql"), "-n 3")
    assert REGISTRY.route("submit --backend livy", "print(1)") == (REGISTRY.get("submit"), "--backend livy")
    with pytest.raises(UsageError, match="%%hail info is a line magic: use %hail info"):
        REGISTRY.route("info", "x = 1")
    with pytest.raises(UsageError, match="%%hail sql runs as a cell magic"):
        REGISTRY.route("sql", None)
    with pytest.raises(UsageError, match=r"unknown %hail subcommand 'nope'; one of: connect, info, .*, ssm \(see"):
        REGISTRY.route("nope", None)


def test_usage_errors_name_the_flag_and_show_the_usage_line():
    with pytest.raises(UsageError) as err:
        REGISTRY.get("logs").parse("-n many")
    assert "argument -n: invalid int value: 'many'" in str(err.value)
    assert "%hail logs [-n N]\n(see %hail help)" in str(err.value)
    with pytest.raises(UsageError, match="%hail ssm: No closing quotation; quote the command once"):
        REGISTRY.get("ssm").parse("--command 'df -h")


def test_a_negative_row_limit_means_every_row_for_o_and_sql():
    """sparkmagic users type ``-n -1`` for "all rows": ``-o`` must not cut the last row off
    (a pandas frame's ``iloc[:-1]``), and ``-o`` and ``sql`` read ``-n`` by one rule."""
    from hail_emr_lab.notebook.magics.args import cell_parser, sql_parser

    assert cell_parser().parse_args(["-o", "df", "-n", "-1"]).maxrows is None
    assert cell_parser().parse_args(["-o", "df", "-n", "5"]).maxrows == 5
    assert cell_parser().parse_args(["-o", "df"]).maxrows is None
    assert sql_parser().parse_args(["-n", "-1"]).maxrows is None
    assert sql_parser().parse_args([]).maxrows == 1000
    with pytest.raises(UsageError, match="-n takes a number of rows"):
        REGISTRY.get("sql").parse("-n many")


# ------------------------------------------------------------------ %hail connect flags


def _flag_fields() -> dict[str, dataclasses.Field]:
    return {f.name: f for f, _ in connect_flags()}


def test_the_connect_parser_sets_exactly_the_connect_option_fields():
    args = REGISTRY.get("connect").parse("")
    assert set(vars(args)) == set(_flag_fields())
    assert ConnectOptions(**vars(args)) == ConnectOptions()  # no flag: every field at its default


def test_every_connect_flag_reaches_its_connect_option():
    words = []
    for spec, kind in connect_flags():
        flag = spec.metadata["flag"]
        if kind is bool:
            words.append(flag)  # --local, --new... or --no-hail: each flips its field's default
        elif spec.name == "conf":
            words += [flag, "spark.a=1", flag, "spark.b=2"]
        elif "choices" in spec.metadata:
            words += [flag, spec.metadata["choices"][-1]]
        else:
            words += [flag, "7" if "int" in str(kind) else "2.5" if "float" in str(kind) else "x"]
    opts = ConnectOptions(**vars(REGISTRY.get("connect").parse(" ".join(words))))
    default = ConnectOptions()
    unchanged = [name for name in _flag_fields() if getattr(opts, name) == getattr(default, name)]
    assert not unchanged, f"flags that did not reach ConnectOptions: {unchanged}"
    assert opts.conf == {"spark.a": "1", "spark.b": "2"}
    assert (opts.hail, opts.plots, opts.driver_cores, opts.probe_timeout) == (False, False, 7, 2.5)


def test_conf_pairs_are_repeatable_and_never_shared_between_connects():
    parse = REGISTRY.get("connect").parse
    first = ConnectOptions(**vars(parse("--conf a=1 --conf a=2")))
    assert first.conf == {"a": "2"}  # the later one wins, as in Spark
    second = ConnectOptions(**vars(parse("")))
    second.conf["leak"] = "x"
    assert ConnectOptions(**vars(parse(""))).conf == {}
    with pytest.raises(UsageError, match="--conf takes key=value, got 'novalue'"):
        parse("--conf novalue")


def test_a_field_without_a_flag_is_not_in_the_parser():
    # start_timeout is for callers in code only.
    assert "start_timeout" not in _flag_fields()
    assert "start_timeout" in {f.name for f in dataclasses.fields(ConnectOptions)}


# ------------------------------------------------------------------ what the magic prints


@pytest.fixture(scope="module")
def shell():
    from IPython.testing.globalipapp import start_ipython

    ip = start_ipython()
    ip.run_line_magic("load_ext", "hail_emr_lab")
    return ip


def test_help_and_a_bare_percent_hail_print_the_registry_help(shell, capsys):
    shell.run_line_magic("hail", "help")
    assert capsys.readouterr().out == help_text(REGISTRY) + "\n"
    shell.run_line_magic("hail", "  # nothing but a comment")
    assert capsys.readouterr().out == help_text(REGISTRY) + "\n"


def test_a_subcommand_help_flag_prints_its_help_and_does_nothing_else(shell, capsys):
    assert shell.run_line_magic("hail", "delete --help") is None  # not connected, yet no error
    assert capsys.readouterr().out == REGISTRY.get("delete").parser.format_help()
    shell.run_cell_magic("hail", "--help", "1 / 0")
    assert capsys.readouterr().out == REGISTRY.cell.parser.format_help()


@pytest.mark.parametrize("entry", [e for e in REGISTRY if not e.raw], ids=lambda e: e.typed)
def test_an_unclosed_quote_is_a_usage_error_naming_the_subcommand(entry, shell):
    # Not a bare ValueError from the line splitter: the message says which magic and what to do.
    with pytest.raises(UsageError, match=f"^{re.escape(entry.typed)}: No closing quotation; "):
        if entry.cell == "required":
            shell.run_cell_magic("hail", f"{entry.name} --x 'unclosed".strip(), "1")
        else:
            shell.run_line_magic("hail", f"{entry.name} --x 'unclosed")
