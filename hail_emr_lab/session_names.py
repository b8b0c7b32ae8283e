"""One Livy session per notebook: its name, derived from the user's base name and the notebook path.

A kernel learns its notebook from ``JPY_SESSION_NAME`` (set by jupyter_server in the environment
of every kernel it starts for a notebook), else from ``__session__`` in the user namespace
(ipykernel copies it there), else it has none and the base name is used as before. The name is
``<base>@<notebook stem>-<8 hex of the path's SHA-1>``: stable across kernel restarts (same
path, same name, so ``%hail connect`` reattaches), distinct for two notebooks with one stem, and
still readable in the Livy UI. ``%hail connect --name`` bypasses all this to share a session.

Every surface (``%hail sessions`` and ``%hail delete``, the sidebar, the panel) takes as the
user's own every session named ``<base>`` or ``<base>@...`` (:func:`is_own`), and the sidebar maps
a name back to its notebook with :func:`notebook_names` over the notebooks Jupyter has open.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import PurePath
from typing import Any, Optional

SEPARATOR = "@"
#: Characters of the notebook stem kept in the name (Spark also uses the name as the app name).
STEM_CHARS = 40


def normalize(path: str) -> str:
    """The form of a notebook path that is hashed: absolute paths with symlinks resolved."""
    return os.path.realpath(path) if os.path.isabs(path) else os.path.normpath(path)


def kernel_notebook(env: Optional[Mapping[str, str]] = None, user_ns: Optional[Mapping[str, Any]] = None) -> Optional[str]:
    """The notebook this kernel runs for (a path), or None when it cannot tell."""
    env = os.environ if env is None else env
    path = env.get("JPY_SESSION_NAME")
    if not path:
        if user_ns is None:
            user_ns = _user_ns()
        value = (user_ns or {}).get("__session__")
        path = value if isinstance(value, str) else None
    return normalize(path) if path and path.strip() else None


def _user_ns() -> Mapping[str, Any]:
    try:
        from IPython import get_ipython
    except ImportError:
        return {}
    shell = get_ipython()
    return getattr(shell, "user_ns", None) or {}


def notebook_session_name(base: str, notebook: str) -> str:
    """``<base>@<stem>-<hash>`` for ``notebook`` (a path as :func:`kernel_notebook` returns it)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", PurePath(notebook).stem).strip("-.")[:STEM_CHARS] or "notebook"
    digest = hashlib.sha1(normalize(notebook).encode("utf-8")).hexdigest()[:8]
    return f"{base}{SEPARATOR}{stem}-{digest}"


def default_session_name(base: str, env: Optional[Mapping[str, str]] = None,
                         user_ns: Optional[Mapping[str, Any]] = None) -> str:
    """This kernel's session name: per notebook when the notebook is known, else ``base``."""
    notebook = kernel_notebook(env, user_ns)
    return notebook_session_name(base, notebook) if notebook else base


def is_own(name: Optional[str], base: Optional[str], current: Optional[str] = None) -> bool:
    """Whether a session is the user's: named ``base`` (the configured ``session_name``) or
    ``base@<notebook>``, or ``current``, the name this kernel connected with (a name shared
    with ``%hail connect --name``). The one answer for ``%hail sessions``, ``%hail delete``,
    the sidebar and the panel."""
    if not name:
        return False
    if current and name == current:
        return True
    return bool(base) and (name == base or name.startswith(f"{base}{SEPARATOR}"))


def notebook_names(base: str, notebooks: Iterable[tuple[str, str]]) -> dict[str, str]:
    """``{session name: shown path}`` for ``(path, shown path)`` pairs of open notebooks."""
    return {notebook_session_name(base, path): shown for path, shown in notebooks}


def notebook_label(name: Optional[str], base: Optional[str], known: Mapping[str, str]) -> Optional[str]:
    """Which notebook a session belongs to: its path when the notebook is open, else the stem
    kept in the name, else None (a shared or foreign session)."""
    if not name:
        return None
    if name in known:
        return known[name]
    if base and name.startswith(f"{base}{SEPARATOR}"):
        stem = name[len(base) + 1:]
        return re.sub(r"-[0-9a-f]{8}$", "", stem)
    return None
