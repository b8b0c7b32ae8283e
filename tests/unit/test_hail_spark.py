"""Hail's Spark conf has one definition: the EMR session, the embedded server and the batch
jobs each carry exactly its settings, so none of them can drift from the others."""

from __future__ import annotations

import pytest

from hail_emr_lab import hail_spark
from hail_emr_lab.embedded import sparkconf
from hail_emr_lab.jobs import spark as job_spark

# Pinned by hand: changing one of these is changing what Hail needs, so it must be deliberate.
KRYO = {
    "spark.serializer": "org.apache.spark.serializer.KryoSerializer",
    "spark.kryo.registrator": "is.hail.kryo.HailKryoRegistrator",
}


def _subset(conf: dict[str, str], expected: dict[str, str]) -> dict[str, str]:
    return {key: conf.get(key) for key in expected}


def test_the_shared_facts_are_pinned():
    assert hail_spark.KRYO_CONF == KRYO
    assert _subset(hail_spark.PYSPARK_CONF, KRYO) == KRYO
    assert hail_spark.EMR_HAIL_JAR == "/opt/hail/hail-all-spark.jar"
    assert set(hail_spark.JAR_KEYS) == {"spark.jars", "spark.driver.extraClassPath", "spark.executor.extraClassPath"}


def test_an_emr_session_gets_hail_conf_with_the_emr_jar():
    # what ``%hail connect`` sends to an EMR cluster's Livy unless --hail-jar says otherwise
    assert hail_spark.session_conf() == {
        **KRYO,
        "spark.jars": "/opt/hail/hail-all-spark.jar",
        "spark.driver.extraClassPath": "/opt/hail/hail-all-spark.jar",
        "spark.executor.extraClassPath": "./hail-all-spark.jar",
    }


def test_a_custom_jar_is_found_on_executors_under_its_own_name():
    # spark.jars ships a jar into each executor's working directory under its file name.
    conf = hail_spark.session_conf("/mnt/hail/hail-0.2.139.jar")
    assert conf["spark.executor.extraClassPath"] == "./hail-0.2.139.jar"
    assert conf["spark.driver.extraClassPath"] == "/mnt/hail/hail-0.2.139.jar"


def test_the_embedded_server_carries_all_of_hails_pyspark_conf(tmp_path, monkeypatch):
    jar = tmp_path / "hail-all-spark.jar"
    jar.write_bytes(b"")
    monkeypatch.setenv("HAIL_JAR", str(jar))
    conf = sparkconf.session_conf({"conf": {"spark.jars": "/x/extra.jar"}}, "app")
    assert _subset(conf, hail_spark.PYSPARK_CONF) == hail_spark.PYSPARK_CONF
    assert conf["spark.jars"] == f"/x/extra.jar,{jar}"
    assert conf["spark.driver.extraClassPath"] == conf["spark.executor.extraClassPath"] == str(jar)


@pytest.mark.parametrize("uri", ["s3://bucket/hail/hail-all-spark.jar", "s3://bucket/hail/hail-all-spark.jar/"])
def test_batch_jobs_get_kryo_and_the_shipped_jar(uri):
    conf = job_spark.hail_conf(uri, None, "spark.emr-serverless.driverEnv")
    assert conf == {
        **KRYO,
        "spark.driver.extraClassPath": "./hail-all-spark.jar",
        "spark.executor.extraClassPath": "./hail-all-spark.jar",
    }
