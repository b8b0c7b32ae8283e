"""SageMaker lifecycle scripts and their tooling (``hail-emr-lab lifecycle ...``).

Plain functions, one job per module: :func:`render` the templates in ``lifecycle-scripts/``,
:func:`validate_dir` them against the platform's rules, :func:`install` them through boto3,
print a least-privilege :func:`iam_policy`, and the EMR plot-directory step (:func:`emr_steps`).
"""

from __future__ import annotations

from .emr import emr_steps, livy_configurations, upload_emr_scripts
from .iam import iam_policy
from .install import install
from .params import LifecycleError, LifecycleParams
from .render import SCRIPTS, render, render_text, scripts_dir
from .validate import MAX_BASE64_CHARS, validate_dir, validate_script

__all__ = [
    "MAX_BASE64_CHARS",
    "SCRIPTS",
    "LifecycleError",
    "LifecycleParams",
    "emr_steps",
    "iam_policy",
    "install",
    "livy_configurations",
    "render",
    "render_text",
    "scripts_dir",
    "upload_emr_scripts",
    "validate_dir",
    "validate_script",
]
