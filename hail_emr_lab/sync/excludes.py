"""gitignore-style exclude patterns.

Supported: ``*``, ``?``, ``[...]``, ``**`` (``**/x``, ``x/**``, ``a/**/b``), a trailing ``/``
(directories only), a leading or inner ``/`` (anchored at the home), ``!`` to re-include, and
``#`` comments. As in git, a file inside an excluded directory cannot be re-included.
"""

from __future__ import annotations

import re
from typing import Iterable

from .keys import RESERVED

#: Skipped by default (issue 5). ``/bin/`` is anchored: the seeded scripts folder only.
DEFAULT_EXCLUDES = (
    "/bin/",
    ".sparkmagic/",
    ".ipynb_checkpoints/",
    ".Trash-*",
    "lost+found",
    "__pycache__/",
    ".~*",  # Jupyter's temporary copies while it saves a file atomically
    ".hail-plots-index.lock",  # the plot index's lock file (the index itself is kept)
    ".hail-emr-lab-lifecycle/",  # per-machine state of the lifecycle scripts
)


def _translate(glob: str) -> str:
    out = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "*":
            if glob.startswith("**", i):
                before_ok = i == 0 or glob[i - 1] == "/"
                after = glob[i + 2 : i + 3]
                if before_ok and after == "/":
                    out.append("(?:.*/)?")
                    i += 3
                    continue
                if before_ok and i + 2 == n:
                    out.append(".*")
                    i += 2
                    continue
                out.append("[^/]*")
                i += 2
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = glob.find("]", i + 2 if glob[i + 1 : i + 2] in ("!", "^") else i + 1)
            if j == -1:
                out.append(re.escape(c))
            else:
                body = glob[i + 1 : j]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(glob[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


class Excludes:
    """A compiled list of patterns; :meth:`excluded` answers for a home-relative name."""

    def __init__(self, patterns: Iterable[str] = DEFAULT_EXCLUDES, extra: Iterable[str] = ()) -> None:
        self.patterns = [p for p in list(patterns) + list(extra) if p and p.strip()]
        self._rules: list[tuple[re.Pattern[str], bool, bool]] = []
        for raw in self.patterns:
            pat = raw.rstrip("\n")
            if pat.lstrip().startswith("#"):
                continue
            pat = pat.strip()
            negate = pat.startswith("!")
            if negate:
                pat = pat[1:]
            dir_only = pat.endswith("/")
            pat = pat.rstrip("/")
            if not pat:
                continue
            anchored = "/" in pat
            pat = pat.lstrip("/")
            body = _translate(pat)
            regex = ("^" if anchored else "^(?:.*/)?") + body + "$"
            self._rules.append((re.compile(regex, re.DOTALL), dir_only, negate))

    def match(self, rel: str, is_dir: bool) -> bool:
        """Does ``rel`` itself match (ignoring its parents)? Last matching rule wins."""
        if "/" not in rel and rel in RESERVED:
            return True
        result = False
        for regex, dir_only, negate in self._rules:
            if dir_only and not is_dir:
                continue
            if regex.match(rel):
                result = not negate
        return result

    def excluded(self, rel: str, is_dir: bool = False) -> bool:
        """Is ``rel`` excluded, itself or through any parent directory?"""
        parts = rel.split("/")
        for i in range(1, len(parts)):
            if self.match("/".join(parts[:i]), True):
                return True
        return self.match(rel, is_dir)
