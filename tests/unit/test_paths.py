"""The one "path stays inside a root" rule, and its three users (plots, sidebar viewer, home sync)."""

from __future__ import annotations

import os

import pytest

from hail_emr_lab.dashboard.plots import UnsafePath, plot_file, plots_dir
from hail_emr_lab.paths import PathRefused, path_inside, unsafe_reason, within
from hail_emr_lab.plots.errors import UnsafePlotName
from hail_emr_lab.plots.store import target
from hail_emr_lab.sync.keys import PathGuard, UnsafeKey

BAD = {
    "": "empty",
    "a\x00b": "NUL",
    "a\\b": "backslash",
    "/etc/passwd": "absolute",
    "C:evil": "drive letter",
    "../x": "'..'",
    "a/../../x": "'..'",
    "a//b": "empty path component",
    "./a": "'.'",
    "a/": "empty path component",
    "x" * 256: "longer than 255 bytes",
    "é" * 128: "longer than 255 bytes",  # 256 bytes in UTF-8, 128 characters
    "/".join(["d" * 200] * 21): "longer than 4096 bytes",
    "bad\udcff": "not valid UTF-8",
}


@pytest.mark.parametrize("rel", list(BAD), ids=[repr(k)[:20] for k in BAD])
def test_unsafe_names_have_a_reason(rel, tmp_path):
    assert BAD[rel] in unsafe_reason(rel)
    for follow in (True, False):
        with pytest.raises(PathRefused, match="refused|empty|NUL|backslash|absolute|drive|component|longer|UTF"):
            path_inside(tmp_path, rel, follow=follow)


@pytest.mark.parametrize("rel", ["a", "a/b/c.html", "x" * 255, "~notes", "qq plot (v2).png", "Ähre.svg"])
def test_ordinary_names_pass(rel, tmp_path):
    assert unsafe_reason(rel) is None
    assert path_inside(tmp_path, rel, follow=False) == tmp_path.joinpath(*rel.split("/"))
    assert path_inside(tmp_path, rel) == tmp_path.resolve().joinpath(*rel.split("/"))


def test_within_is_per_component():
    assert within("/home/u", "/home/u") and within("/home/u", "/home/u/a")
    assert not within("/home/u", "/home/u2/a") and not within("/home/u", "/home")


@pytest.fixture
def tree(tmp_path):
    """root/ with: out -> outside dir, self -> root/in, file-out -> outside file, in/ real."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "in").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.html").write_text("secret")
    (root / "out").symlink_to(outside, target_is_directory=True)
    (root / "self").symlink_to(root / "in", target_is_directory=True)
    (root / "file-out.html").symlink_to(outside / "secret.html")
    (root / "dangling.html").symlink_to(outside / "nothing-yet.html")
    return root


def test_reading_follows_symlinks_only_inside(tree):
    assert path_inside(tree, "self/x.html") == (tree / "in" / "x.html").resolve()
    for rel in ("out/secret.html", "file-out.html", "out", "dangling.html"):
        with pytest.raises(PathRefused, match="leads outside"):
            path_inside(tree, rel)


def test_writing_refuses_symlinked_parents_and_symlinks_as_the_file(tree):
    with pytest.raises(PathRefused, match="would be written outside"):
        path_inside(tree, "out/new.html", follow=False)
    for rel in ("file-out.html", "dangling.html", "self"):
        with pytest.raises(PathRefused, match="symlink locally"):
            path_inside(tree, rel, follow=False)
    # A parent that does not exist yet is fine: the caller makes it a real directory.
    assert path_inside(tree, "in/new/x.html", follow=False) == tree / "in" / "new" / "x.html"


def test_checked_parents_are_remembered_but_the_file_is_always_checked(tree):
    checked: set[str] = set()
    path_inside(tree, "in/a.html", follow=False, checked=checked)
    assert checked == {str(tree / "in")}
    (tree / "in" / "b.html").symlink_to(tree / "out" / "secret.html")
    with pytest.raises(PathRefused, match="symlink locally"):
        path_inside(tree, "in/b.html", follow=False, checked=checked)


def test_each_caller_raises_its_own_error_type(tree):
    # Sync: a restore never writes through a symlink out of the home.
    with pytest.raises(UnsafeKey, match="outside the home"):
        PathGuard(tree).path("out/evil.txt")
    # Sidebar viewer: a plots/ symlinked outside the Jupyter root, or a name climbing out.
    (tree / "nb").mkdir()
    (tree / "nb" / "plots").symlink_to(tree / "out", target_is_directory=True)
    with pytest.raises(UnsafePath, match="outside the Jupyter root"):
        plots_dir(tree, "nb")
    with pytest.raises(UnsafePath, match="absolute"):
        plots_dir(tree, "/etc")
    with pytest.raises(UnsafePath, match="'..'"):
        plot_file(tree, "in", "../../outside/secret.html")
    # Plots pulled from the cluster: the name rules plus the root.
    (tree / "plots").mkdir()
    (tree / "plots" / "gwas").symlink_to(tree / "out", target_is_directory=True)
    with pytest.raises(UnsafePlotName):
        target(tree / "plots", "gwas/manhattan.html")
    with pytest.raises(UnsafePlotName, match="NUL"):
        target(tree / "plots", "a\x00.html")
    for error in (UnsafeKey, UnsafePath, UnsafePlotName):
        assert issubclass(error, PathRefused)


def test_a_root_that_is_itself_a_symlink_is_fine(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    assert path_inside(link, "a.html") == real.resolve() / "a.html"
    assert path_inside(link, "a.html", follow=False) == link / "a.html"
    assert os.path.realpath(PathGuard(link).path("a/b.txt")) == str(real.resolve() / "a" / "b.txt")


def test_over_long_names_are_refused_with_a_reason_not_an_os_error(tmp_path):
    (tmp_path / "plots").mkdir()
    with pytest.raises(UnsafePath, match="longer than 255 bytes"):
        plot_file(tmp_path, "", "x" * 300 + ".html")
    with pytest.raises(UnsafeKey, match="longer than 255 bytes"):
        PathGuard(tmp_path).path("docs/" + "y" * 300)
