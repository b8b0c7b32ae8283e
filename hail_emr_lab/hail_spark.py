"""Hail's Spark configuration and EMR's jar path: the only definition.

Three places start a Spark driver for Hail, and each takes Hail's settings from here, adding
only what is its own:

* an interactive session on an EMR cluster (``notebook.connect``): :func:`session_conf`;
* the embedded server's sessions and batches (``embedded.sparkconf``): :data:`PYSPARK_CONF`
  and :data:`JAR_KEYS`, with the jar of the installed ``hail`` package, a local master ...;
* batch jobs on EMR Serverless and EMR on EKS (``jobs.spark``): :data:`KRYO_CONF` and
  :func:`shipped_jar`.

Sources: Hail's ``hail/backend/spark_backend.py`` (the jar on ``spark.jars`` and on both
``extraClassPath`` keys, ``./hail-all-spark.jar`` on executors when Spark starts before Hail)
and ``is.hail.backend.spark.SparkBackend.pySparkConf`` (the settings below), checked against
hail 0.2.13x.
"""

from __future__ import annotations

from typing import Optional

#: The file name of Hail's jar (in a hail wheel: ``hail/backend/hail-all-spark.jar``).
JAR_NAME = "hail-all-spark.jar"
#: Where EMR's Hail (the Hail bootstrap action, as the lifecycle scripts set it up) keeps its jar
#: on every node.
EMR_HAIL_JAR = f"/opt/hail/{JAR_NAME}"

#: Kryo with Hail's registrator: Hail's JVM objects cannot be shipped between executors without it.
KRYO_CONF: dict[str, str] = {
    "spark.serializer": "org.apache.spark.serializer.KryoSerializer",
    "spark.kryo.registrator": "is.hail.kryo.HailKryoRegistrator",
}

#: Everything Hail's own ``pySparkConf`` sets (Kryo, its buffer, unlimited results, Hail's block
#: gzip codecs); for a driver whose JVM starts before Hail could be asked (spark-submit).
PYSPARK_CONF: dict[str, str] = {
    **KRYO_CONF,
    "spark.kryoserializer.buffer.max": "1g",
    "spark.driver.maxResultSize": "0",
    "spark.hadoop.io.compression.codecs": ",".join(
        [
            "org.apache.hadoop.io.compress.DefaultCodec",
            "is.hail.io.compress.BGzipCodec",
            "is.hail.io.compress.BGzipCodecTbi",
            "org.apache.hadoop.io.compress.GzipCodec",
        ]
    ),
}

#: The conf keys that put Hail's jar on the class path, each with the separator of its list.
JAR_KEYS: dict[str, str] = {
    "spark.jars": ",",
    "spark.driver.extraClassPath": ":",
    "spark.executor.extraClassPath": ":",
}


def shipped_jar(jar: str) -> str:
    """Where a jar given to ``spark.jars`` (or ``--jars``) lands in each container: ``./NAME``.

    Spark copies it into the working directory of every executor (and, on EMR Serverless and
    EMR on EKS, of the driver) under its file name. ``jar`` is a path or URI; a trailing ``/``
    is ignored.
    """
    return "./" + jar.rstrip("/").rsplit("/", 1)[-1]


def session_conf(jar: Optional[str] = None) -> dict[str, str]:
    """Hail's conf for a session on a cluster whose nodes hold the jar at ``jar``.

    ``jar`` defaults to :data:`EMR_HAIL_JAR`. The driver loads it from there; executors from the
    copy ``spark.jars`` ships them (:func:`shipped_jar`). Returns Spark conf keys to values.
    """
    jar = jar or EMR_HAIL_JAR
    return {
        **KRYO_CONF,
        "spark.jars": jar,
        "spark.driver.extraClassPath": jar,
        "spark.executor.extraClassPath": shipped_jar(jar),
    }
