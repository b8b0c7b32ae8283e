"""The root of every error hail-emr-lab raises on purpose.

Messages are written for the user: what happened, then what to do. Subsystems subclass
:class:`HailEmrLabError` (e.g. ``hail_emr_lab.livy.errors.LivyError``) so the command line
and the magics can show them as one paragraph instead of a traceback.
"""

from __future__ import annotations


class HailEmrLabError(Exception):
    """An error whose message is meant for the user; ``exit_code`` is used by the CLI."""

    exit_code: int = 1


class ConfigError(HailEmrLabError):
    """The configuration (flags, environment, config files) is invalid or incomplete."""

    exit_code = 2
