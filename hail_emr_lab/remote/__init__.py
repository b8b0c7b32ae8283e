"""Code that runs on the cluster, shipped as source text and exec'd once per session.

Everything in this package must run on Python 3.7+ with only pyspark, pandas and numpy
(EMR nodes may lack pyarrow). :func:`bootstrap_code` is the one way any of it reaches a Livy
session: it defines a module object there (``_hail_emr_lab`` for the frame transfer and the
``hl.init`` guard, ``_hail_emr_lab_plots`` for the plot directory) from the files of
:data:`MODULES`; the notebook side calls their functions by name.
"""

from __future__ import annotations

from importlib import resources

#: The data-transfer and Hail-habits namespace in the session.
NAMESPACE = "_hail_emr_lab"
#: The plot-directory namespace (own module object: its state and names stay apart).
PLOTS_NAMESPACE = "_hail_emr_lab_plots"
#: Each namespace in the session, and the files exec'd, in order, into it.
MODULES = {
    NAMESPACE: ("codec.py", "dataframe.py", "staged.py", "pull.py", "push.py", "hail_init.py"),
    PLOTS_NAMESPACE: ("plots.py",),
}


def source(name: str) -> str:
    """The text of one remote module (read from the installed package)."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


def bootstrap_code(namespace: str = NAMESPACE) -> str:
    """A statement that (re)defines ``namespace`` (a key of :data:`MODULES`) in the session.

    Raises KeyError for a namespace that is not in :data:`MODULES`.
    """
    text = "\n\n".join(source(name) for name in MODULES[namespace])
    return (
        "import types as _hel_types\n"
        f"{namespace} = _hel_types.ModuleType({namespace!r})\n"
        f"exec(compile({text!r}, '<hail_emr_lab.remote>', 'exec'), {namespace}.__dict__)\n"
        "del _hel_types\n"
    )
