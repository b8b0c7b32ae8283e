"""Spark configuration of the embedded server's sessions and batches.

Hail's settings come from :mod:`hail_emr_lab.hail_spark`; this module adds what is the embedded
server's own: the jar of the installed ``hail`` package, a local master on loopback, and Livy's
request fields mapped to Spark keys.
"""

from __future__ import annotations

import os
import sys
from importlib.util import find_spec
from typing import Any

from ..hail_spark import JAR_KEYS, JAR_NAME, PYSPARK_CONF
from ..livy.protocol import LIVY_CONF_PREFIX, RSC_DEFAULTS
from .common import bad_request

DEFAULT_DRIVER_MEMORY = "1g"


def _package_dir(name: str) -> str:
    spec = find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the Python package {name!r} is not installed in {sys.executable}")
    return list(spec.submodule_search_locations)[0]


def hail_jar() -> str:
    """Path of the Hail jar shipped in the installed ``hail`` package (or ``$HAIL_JAR``)."""
    override = os.environ.get("HAIL_JAR")
    if override:
        return override
    jar = os.path.join(_package_dir("hail"), "backend", JAR_NAME)
    if not os.path.isfile(jar):
        raise RuntimeError(f"Hail's jar is missing at {jar}: reinstall hail (pip install --force-reinstall hail)")
    return jar


def spark_submit() -> str:
    """pyspark's own ``spark-submit`` script."""
    return os.path.join(_package_dir("pyspark"), "bin", "spark-submit")


def _append(conf: dict[str, str], key: str, value: str, sep: str) -> None:
    old = conf.get(key)
    conf[key] = value if not old else f"{old}{sep}{value}"


def session_conf(request: dict, name: str) -> dict[str, str]:
    """The Spark conf for a session or batch created with Livy request fields ``request``.

    Hail's jar goes on spark.jars and both extraClassPaths; Livy's sizing fields map to the
    Spark keys Livy itself would set. The request's own ``conf`` wins over everything else
    except the Hail classpath entries, which are appended to. Keys starting with
    ``spark.__livy__.`` are Livy settings (:func:`livy_settings`), not passed to Spark.
    """
    jar = hail_jar()
    conf: dict[str, str] = dict(PYSPARK_CONF)
    conf.update(
        {
            "spark.app.name": name,
            "spark.driver.memory": request.get("driverMemory") or DEFAULT_DRIVER_MEMORY,
            "spark.ui.port": "0",
            "spark.ui.showConsoleProgress": "false",
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
        }
    )
    sizing = {
        "driverCores": "spark.driver.cores",
        "executorMemory": "spark.executor.memory",
        "executorCores": "spark.executor.cores",
        "numExecutors": "spark.executor.instances",
        "queue": "spark.yarn.queue",
    }
    for field, key in sizing.items():
        if request.get(field) is not None:
            conf[key] = str(request[field])
    user_conf = {
        str(k): str(v) for k, v in (request.get("conf") or {}).items() if not str(k).startswith(LIVY_CONF_PREFIX)
    }
    conf.update(user_conf)
    conf.setdefault("spark.master", f"local[{request['driverCores']}]" if request.get("driverCores") else "local[*]")
    for key, sep in JAR_KEYS.items():  # local master: executors read the jar where the driver does
        _append(conf, key, jar, sep)
    for field, key in (
        ("jars", "spark.jars"),
        ("pyFiles", "spark.submit.pyFiles"),
        ("files", "spark.files"),
        ("archives", "spark.archives"),
    ):
        for item in request.get(field) or []:
            _append(conf, key, str(item), ",")
    return conf


def livy_settings(request: dict) -> tuple[dict[str, int], list[str]]:
    """Livy's session settings from the ``spark.__livy__.*`` keys of the request's ``conf``.

    Returns (every setting of ``RSC_DEFAULTS``, with the request's values, as integers;
    the names of the other ``spark.__livy__`` settings, which this server does not use).
    Raises a 400 ApiError naming the key when a value is not a positive integer.
    """
    settings = dict(RSC_DEFAULTS)
    unused = []
    for key, value in (request.get("conf") or {}).items():
        key = str(key)
        if not key.startswith(LIVY_CONF_PREFIX):
            continue
        name = key[len(LIVY_CONF_PREFIX) :]
        if name not in settings:
            unused.append(name)
            continue
        settings[name] = _positive_int(value, key)
    return settings, unused


def _positive_int(value: Any, key: str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if number < 1 or isinstance(value, bool):
        raise bad_request(f"conf '{key}' must be a positive whole number, got {value!r}")
    return number
