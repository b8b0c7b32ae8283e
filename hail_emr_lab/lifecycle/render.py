"""Render the lifecycle script templates in ``lifecycle-scripts/`` with parameters.

A template is a plain bash script whose parameter lines end in ``#@<name>``, e.g.
``BUCKET=''   #@bucket``; rendering replaces each such line by ``BUCKET='<value>'`` (shell
quoted) and drops comment-only and blank lines, so the well-commented template still fits
SageMaker's 16,384-character base64 limit. ``# shellcheck`` directives are kept.
Blocks between ``#@if <name>=<value>`` and ``#@endif`` are kept only when the parameter has that
value (e.g. the package-index install is left out of a script rendered for offline use).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from .. import __version__
from .params import LifecycleError, LifecycleParams

#: Scripts of a SageMaker lifecycle configuration, in the order SageMaker runs them.
SCRIPTS = ("on-create.sh", "on-start.sh")

_IF_LINE = re.compile(r"^\s*#@if\s+(?P<name>[a-z_]+)=(?P<value>\S+)\s*$")
_ENDIF_LINE = re.compile(r"^\s*#@endif\s*$")
_PARAM_LINE = re.compile(r"^(?P<var>[A-Z_]+)=\S*\s+#@(?P<name>[a-z_]+)\s*$")


def scripts_dir() -> Path:
    """Where the templates live: packaged beside this module, else the source checkout."""
    packaged = Path(__file__).resolve().parent / "scripts"
    if (packaged / "on-start.sh").is_file():
        return packaged
    checkout = Path(__file__).resolve().parents[2] / "lifecycle-scripts"
    if (checkout / "on-start.sh").is_file():
        return checkout
    raise LifecycleError(
        "the lifecycle script templates are missing from this installation "
        f"(looked in {packaged} and {checkout}); reinstall hail-emr-lab"
    )


def template(name: str) -> str:
    """The text of template ``name`` (e.g. ``on-start.sh`` or ``emr/create-plots-dir.sh``)."""
    return (scripts_dir() / name).read_text(encoding="utf-8")


def _value(params: LifecycleParams, name: str) -> str:
    if not hasattr(params, name):
        raise LifecycleError(f"template parameter #@{name} is unknown (a bug in the template)")
    value = getattr(params, name)
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value or "")


def select_blocks(text: str, params: LifecycleParams) -> str:
    """Keep ``#@if name=value`` ... ``#@endif`` blocks whose condition holds; drop the others."""
    out: list[str] = []
    keep: list[bool] = []
    for number, line in enumerate(text.splitlines(), 1):
        match = _IF_LINE.match(line)
        if match:
            keep.append(_value(params, match["name"]) == match["value"])
        elif _ENDIF_LINE.match(line):
            if not keep:
                raise LifecycleError(f"template line {number}: #@endif without #@if (a bug in the template)")
            keep.pop()
        elif all(keep):
            out.append(line)
    if keep:
        raise LifecycleError("template: #@if without #@endif (a bug in the template)")
    return "\n".join(out) + "\n"


def strip_comments(text: str) -> str:
    """Drop blank and comment-only lines (keeping the shebang and shellcheck directives)."""
    out = []
    for number, line in enumerate(text.splitlines()):
        stripped = line.strip()
        if number == 0 and stripped.startswith("#!"):
            out.append(line)
        elif not stripped:
            continue
        elif stripped.startswith("#") and not stripped.startswith("# shellcheck"):
            continue
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def render_text(name: str, params: LifecycleParams, text: str | None = None) -> str:
    """Render template ``name`` (or the given template ``text``) with ``params``."""
    text = template(name) if text is None else text
    lines = []
    for line in strip_comments(select_blocks(text, params)).splitlines():
        match = _PARAM_LINE.match(line)
        if match:
            line = f"{match['var']}={shlex.quote(_value(params, match['name']))}"
        lines.append(line)
    shebang, body = lines[0], lines[1:]
    header = (
        f"# hail-emr-lab {__version__} lifecycle script {name}, rendered by `hail-emr-lab lifecycle render`;"
        " source and comments: lifecycle-scripts/ in the hail-emr-lab repository"
    )
    return "\n".join([shebang, header, *body]) + "\n"


def render(params: LifecycleParams, out_dir: Path) -> list[Path]:
    """Validate ``params`` and write the rendered on-create.sh and on-start.sh into ``out_dir``."""
    params.validate()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SCRIPTS:
        path = out_dir / name
        path.write_text(render_text(name, params), encoding="utf-8")
        path.chmod(0o755)
        written.append(path)
    return written
