"""No docstring, comment, document or test names anything outside the repository: a reader of the
checkout has no planning notes, issue tracker or working directories of ours, so a text that
cites them ("see ../shared/...", "(issue 5)") explains nothing. Say the rule itself, or name
its public source (e.g. "Livy REST docs")."""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Not ours to check: dependencies, build outputs, caches, test artifacts.
SKIP_DIRS = {
    ".git", ".venv", "node_modules", "__pycache__", ".ipynb_checkpoints", "test-artifacts", "build", "dist",
    ".pytest_cache", ".ruff_cache", "lib",
}
TEXT_SUFFIXES = {".py", ".md", ".ts", ".tsx", ".sh", ".toml", ".json", ".yml", ".yaml", ".ipynb", ".cfg", ".css"}
OUTSIDE = re.compile(
    "|".join(
        [
            r"\.\./shared/",  # notes kept next to the checkout
            r"\bshared/[\w-]+\.md\b",
            r"\bissue #?\d+\b",  # our tracker's numbers
            r"\bthe issue (gives|says|asks)\b",
            r"\bthe brief\b",
            r"/work/(main|shared|briefs|wt-)",  # our working directories
        ]
    ),
    re.IGNORECASE,
)


def _texts():
    for folder, dirs, files in os.walk(ROOT):
        here = Path(folder)
        # Pruned in place, so a virtualenv or node_modules in the checkout is never walked.
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        if here.relative_to(ROOT).parts[:2] == ("hail_emr_lab", "labextension"):  # the built extension
            dirs[:] = []
            continue
        for name in files:
            path = here / name
            if path.suffix in TEXT_SUFFIXES and path != Path(__file__).resolve():
                yield path.relative_to(ROOT), path.read_text(errors="replace")


def test_no_text_cites_notes_issues_or_directories_outside_the_repository():
    found = [
        f"{rel}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)!r}"
        for rel, text in _texts()
        for m in OUTSIDE.finditer(text)
    ]
    assert not found, "say the rule itself or its public source instead of:\n" + "\n".join(found)
