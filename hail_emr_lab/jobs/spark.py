"""spark-submit parameters shared by the EMR backends (Serverless and EKS): sizing, Hail's
jar and Kryo settings, a packed Python environment, py-files and extra conf."""

from __future__ import annotations

import re
import shlex
from typing import Mapping, Optional, Sequence

from ..hail_spark import KRYO_CONF, shipped_jar
from .base import JobSpec


def sizing_conf(spec: JobSpec) -> dict[str, str]:
    """Spark conf for the driver/executor sizes that are set."""
    conf: dict[str, str] = {}
    if spec.driver_memory:
        conf["spark.driver.memory"] = spec.driver_memory
    if spec.driver_cores:
        conf["spark.driver.cores"] = str(spec.driver_cores)
    if spec.executor_memory:
        conf["spark.executor.memory"] = spec.executor_memory
    if spec.executor_cores:
        conf["spark.executor.cores"] = str(spec.executor_cores)
    if spec.num_executors:
        conf["spark.executor.instances"] = str(spec.num_executors)
    return conf


def hail_conf(jar_uri: Optional[str], archive_uri: Optional[str], driver_env_prefix: str) -> dict[str, str]:
    """Conf for Hail from S3 artifacts: the jar on both class paths (it is downloaded into the
    working directory by --jars) and the packed env's Python for driver and executors."""
    conf: dict[str, str] = {}
    if jar_uri:
        conf.update(KRYO_CONF)
        conf["spark.driver.extraClassPath"] = shipped_jar(jar_uri)
        conf["spark.executor.extraClassPath"] = shipped_jar(jar_uri)
    if archive_uri:
        python = "./environment/bin/python"
        conf[f"{driver_env_prefix}.PYSPARK_DRIVER_PYTHON"] = python
        conf[f"{driver_env_prefix}.PYSPARK_PYTHON"] = python
        conf["spark.executorEnv.PYSPARK_PYTHON"] = python
    return conf


def submit_parameters(
    conf: Mapping[str, str],
    jars: Sequence[str] = (),
    archives: Sequence[str] = (),
    py_files: Sequence[str] = (),
) -> str:
    """One ``sparkSubmitParameters`` string (values quoted when they need it)."""
    parts: list[str] = []
    if archives:
        parts += ["--archives", ",".join(archives)]
    if jars:
        parts += ["--jars", ",".join(jars)]
    if py_files:
        parts += ["--py-files", ",".join(py_files)]
    for key, value in conf.items():
        parts += ["--conf", f"{key}={value}"]
    # EMR splits on whitespace and honours quotes; quote only what needs it ('#' must stay bare).
    return " ".join(shlex.quote(p) if re.search(r"[\s'\"]", p) else p for p in parts)
