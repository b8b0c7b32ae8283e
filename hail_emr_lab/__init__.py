"""hail-emr-lab: Hail on Amazon EMR from JupyterLab, over Apache Livy.

Entry points:

* ``%load_ext hail_emr_lab`` registers the ``%hail`` magics;
* the Jupyter server extension (``hail_emr_lab.server``) serves the sidebar's REST API;
* the labextension (built into ``hail_emr_lab/labextension``) is the JupyterLab sidebar;
* ``hail-emr-lab`` is the command line (see ``hail_emr_lab.cli``).
"""

from __future__ import annotations

__version__ = "0.1.0"


def load_ipython_extension(ipython) -> None:  # noqa: ANN001 - IPython's own type
    """Register the ``%hail`` magics (``%load_ext hail_emr_lab``)."""
    from .notebook.magics import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython) -> None:  # noqa: ANN001
    """Stop background work started by the magics (``%unload_ext hail_emr_lab``)."""
    from .notebook.magics import unload_ipython_extension as _unload

    _unload(ipython)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "hail-emr-lab"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "hail_emr_lab.server"}]
