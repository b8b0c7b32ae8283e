"""Whether a session is the user's: one answer (``session_names.is_own``) for every surface."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from hail_emr_lab.session_names import is_own, notebook_session_name

PACKAGE = Path(__file__).resolve().parents[2] / "hail_emr_lab"
BASE = "hail-alice"


@pytest.mark.parametrize(
    "name, current, own",
    [
        (BASE, None, True),
        (notebook_session_name(BASE, "/home/alice/gwas.ipynb"), None, True),
        (notebook_session_name(BASE, "/home/alice/qc.ipynb"), notebook_session_name(BASE, "/home/alice/gwas.ipynb"), True),
        ("shared-team", "shared-team", True),  # connected with --name shared-team
        ("shared-team", None, False),
        ("hail-alicea", None, False),  # another user whose name starts like ours
        ("hail-alice-x@nb-0123abcd", None, False),
        ("hail-bob@gwas-0123abcd", None, False),
        (None, None, False),
        ("", BASE, False),
    ],
)
def test_is_own(name, current, own):
    assert is_own(name, BASE, current) is own


def test_no_base_means_only_the_current_name():
    assert is_own("x", None, "x") and not is_own("x", None) and not is_own("x", "", None)


def test_every_surface_asks_session_names():
    """The magics, the sidebar's sections and the panel decide ownership with ``is_own`` only:
    none compares a session's name with the user's itself."""
    compared = []
    for rel in ("notebook/magics/session.py", "dashboard/status.py", "dashboard/progress.py", "notebook/panel.py"):
        for node in ast.walk(ast.parse((PACKAGE / rel).read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
                sides = [node.left, *node.comparators]
                if any(isinstance(s, ast.Attribute) and s.attr == "name" for s in sides):
                    compared.append(f"{rel}:{node.lineno}")
    assert compared == []
