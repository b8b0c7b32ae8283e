"""Code that runs on the cluster, shipped as source text and exec'd once per session.

Everything in this package must run on Python 3.7+ with only pyspark, pandas and numpy
(EMR nodes may lack pyarrow). :func:`bootstrap_code` is the statement that defines the
``_hail_emr_lab`` namespace in a Livy session; the magics call its functions by name.
"""

from __future__ import annotations

from importlib import resources

#: Files exec'd, in order, into one namespace on the cluster.
PARTS = ("codec.py", "dataframe.py", "push.py", "hail_init.py")
#: The name of that namespace in the session.
NAMESPACE = "_hail_emr_lab"


def source(name: str) -> str:
    """The text of one remote module (read from the installed package)."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


def bootstrap_code() -> str:
    """A statement that (re)defines ``_hail_emr_lab`` in the session from the remote modules."""
    text = "\n\n".join(source(name) for name in PARTS)
    return (
        "import types as _hel_types\n"
        f"{NAMESPACE} = _hel_types.ModuleType({NAMESPACE!r})\n"
        f"exec(compile({text!r}, '<hail_emr_lab.remote>', 'exec'), {NAMESPACE}.__dict__)\n"
        "del _hel_types\n"
    )
