"""gitignore-style exclude patterns.

Supported: ``*``, ``?``, ``[...]``, ``**`` (``**/x``, ``x/**``, ``a/**/b``), a trailing ``/``
(directories only), a leading or inner ``/`` (anchored at the home), ``!`` to re-include, and
``#`` comments. As in git, a file inside an excluded directory cannot be re-included.

Environments are not work and are skipped too, by what they are rather than by pattern: Python
virtual environments, conda installations and environments, ``node_modules/``, ``.cache/``
(:meth:`Excludes.skip_dir`; ``backup_environments`` backs them up). ``.git/`` is kept whole:
unpushed commits are work, and none of its parts is safe to drop (the index holds staged
changes, the reflog lost commits, the empty ``refs/`` folders are needed).
"""

from __future__ import annotations

import os
import re
from typing import Iterable

from .keys import RESERVED

#: Where ``-o`` stages big results under the user's prefix (``s3://<bucket>/<prefix>/...``): never
#: backed up nor restored, the staged files are deleted after each pull.
STAGING_DIR = ".hail-emr-lab/staging"

#: Skipped by default (environments and caches, not work). ``/bin/`` is anchored: the seeded scripts folder only.
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
    f"/{STAGING_DIR}/",
)


#: Directories that hold environments or caches, not work, by name -> the kind ``status`` counts
#: them under. Skipped unless the ``backup_environments`` switch is on.
ENVIRONMENT_DIRS = {"node_modules": "node_modules", ".cache": "caches"}
#: A directory holding one of these (name, is a directory) is an environment: a Python virtual
#: environment has ``pyvenv.cfg`` at its top (PEP 405), a conda installation or environment a
#: ``conda-meta/`` directory (conda's own marker of a prefix).
ENVIRONMENT_MARKERS = (("pyvenv.cfg", False), ("conda-meta", True))
#: Default-excluded directories that are also counted in ``status`` (their pattern skips them
#: whatever the switch says; a ``!`` pattern re-includes them).
COUNTED_DEFAULTS = {"__pycache__": "caches", ".ipynb_checkpoints": ".ipynb_checkpoints"}
#: The order ``status`` lists the kinds in.
KINDS = ("environments", "node_modules", "caches", ".ipynb_checkpoints")


def environment_kind(path: str) -> str | None:
    """``"environments"`` if the directory at ``path`` is a Python venv or a conda prefix."""
    for name, is_dir in ENVIRONMENT_MARKERS:
        marker = os.path.join(path, name)
        if os.path.isdir(marker) if is_dir else os.path.isfile(marker):
            return "environments"
    return None


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

    def __init__(self, patterns: Iterable[str] = DEFAULT_EXCLUDES, extra: Iterable[str] = (),
                 environments: bool = False) -> None:
        #: True: environments and caches (:data:`ENVIRONMENT_DIRS`, venvs, conda) are backed up too
        self.environments = environments
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
        """Is ``rel`` excluded, itself or through any parent directory?

        By pattern, or by name (:data:`ENVIRONMENT_DIRS`); environments known only from what
        is on disk are :meth:`excluded_on_disk`.
        """
        parts = rel.split("/")
        for i in range(1, len(parts)):
            if self.match("/".join(parts[:i]), True) or self._env_name(parts[i - 1]):
                return True
        return self.match(rel, is_dir) or (is_dir and self._env_name(parts[-1]))

    def _env_name(self, name: str) -> bool:
        return not self.environments and name in ENVIRONMENT_DIRS

    def skip_dir(self, rel: str, path: str) -> tuple[bool, str | None]:
        """(skip it?, the kind ``status`` counts it under or None) for directory ``rel`` at ``path``.

        ``rel``'s parents are assumed walked already (the scan prunes from the top).
        """
        name = rel.rsplit("/", 1)[-1]
        if self.match(rel, True):
            return True, COUNTED_DEFAULTS.get(name)
        if self.environments:
            return False, None
        kind = ENVIRONMENT_DIRS.get(name) or environment_kind(path)
        return kind is not None, kind

    def excluded_on_disk(self, home: str, rel: str) -> bool:
        """:meth:`excluded`, and also inside a skipped environment (which is known from disk)."""
        if self.excluded(rel):
            return True
        parts = rel.split("/")
        return any(self.skip_dir("/".join(parts[:i]), os.path.join(home, *parts[:i]))[0]
                   for i in range(1, len(parts)))


def environments_in(rels: list[str]) -> set[str]:
    """Directories that the names ``rels`` (e.g. a bucket listing) show to be environments:
    those holding a ``pyvenv.cfg`` file or a ``conda-meta/`` (see :data:`ENVIRONMENT_MARKERS`)."""
    out = set()
    for rel in rels:
        parts = rel.rstrip("/").split("/")
        for i in range(1, len(parts)):
            if parts[i] == "conda-meta" or (parts[i] == "pyvenv.cfg" and i == len(parts) - 1 and rel[-1:] != "/"):
                out.add("/".join(parts[:i]))
    return out


def inside(rel: str, dirs: set[str]) -> bool:
    """Is ``rel`` below one of ``dirs``?"""
    parts = rel.rstrip("/").split("/")
    return any("/".join(parts[:i]) in dirs for i in range(1, len(parts)))
