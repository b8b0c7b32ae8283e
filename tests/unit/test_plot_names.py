"""Plot name rules: which names from the cluster may become files under plots/, and their kind."""

from __future__ import annotations

import pytest

from hail_emr_lab.paths import PathRefused
from hail_emr_lab.plots.errors import UnsafePlotName
from hail_emr_lab.plots.names import MAX_DEPTH, check_name, kind_of, printable

REFUSED = {
    "../x.html": "'..'",
    "/etc/passwd": "absolute",
    "C:x.html": "drive letter",
    "a\\b.html": "backslash",
    "nul\x00.html": "NUL",
    ".hidden.html": "hidden",
    "a/.git/x.html": "hidden",
    " lead.html": "leading or trailing space",
    "a//b.html": "empty path component",
    "/".join(["d"] * (MAX_DEPTH + 1)) + ".html": "deeper",
    "x" * 256 + ".html": "longer than 255 bytes",
    "x" * 1025: "longer than 1024",
    "esc\x1b[2J.html": "unexpected character",
    "a;b.html": "unexpected character",
    "\u202eevil.html": "unexpected character",  # right-to-left override: a format character
}


@pytest.mark.parametrize("name", list(REFUSED), ids=[repr(n)[:24] for n in REFUSED])
def test_refused_with_a_reason(name):
    with pytest.raises(UnsafePlotName, match=REFUSED[name].replace("(", r"\(")) as info:
        check_name(name)
    assert isinstance(info.value, PathRefused)


@pytest.mark.parametrize("name", [None, 42, b"x.html", ""])
def test_not_a_string(name):
    with pytest.raises(UnsafePlotName, match="not a non-empty string"):
        check_name(name)


@pytest.mark.parametrize("name", ["hist.html", "gwas/chr1/manhattan (v2).png", "Ähre_1.svg", "a+b=c,d@e[1]~#.jpg"])
def test_ordinary_names_pass(name):
    assert check_name(name) == name


def test_kinds_and_printable():
    assert [kind_of(n) for n in ("a.HTML", "b.htm", "c.jpg", "d.jpeg", "e.svg", "f.pdf", "g.txt", "h")] == [
        "html", "html", "jpeg", "jpeg", "svg", "pdf", "other", "other"]
    assert printable("esc\x1b[2J") == repr("esc\x1b[2J") and "\x1b" not in printable("esc\x1b")
    assert len(printable("x" * 500)) == 120
