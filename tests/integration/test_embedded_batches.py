"""Batches on the embedded Livy: pyspark's spark-submit with Hail's jar and conf."""

from __future__ import annotations

import os
import re
import time

import pytest
import requests

H = {"X-Requested-By": "tests"}

GOOD = """
import sys
from pyspark.sql import SparkSession
from helper_mod import double

spark = SparkSession.builder.getOrCreate()
conf = spark.sparkContext.getConf()
n = spark.sparkContext.parallelize(range(int(sys.argv[1])), 2).map(double).sum()
print("RESULT", n, conf.get("spark.kryo.registrator"), conf.get("spark.test.batch"), spark.sparkContext.master)
spark.stop()
"""

BAD = """
raise ValueError("this batch fails on purpose")
"""

SLOW = """
import time
print("SLEEPING", flush=True)
time.sleep(120)
"""


def _wait_final(url: str, bid: int, timeout: float = 240.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        view = requests.get(f"{url}/batches/{bid}", timeout=10).json()
        if view["state"] in ("success", "dead", "killed", "error"):
            return view
        assert view["state"] in ("starting", "running"), view
        assert time.monotonic() < deadline, f"batch {bid} still {view['state']}"
        time.sleep(0.3)


def _log(url: str, bid: int) -> list[str]:
    return requests.get(f"{url}/batches/{bid}/log?from=0&size=-1", timeout=10).json()["log"]


@pytest.mark.slow
def test_successful_batch_with_args_conf_and_pyfiles(livy_server, tmp_path):
    url = livy_server.url
    (tmp_path / "job.py").write_text(GOOD)
    (tmp_path / "helper_mod.py").write_text("def double(x):\n    return 2 * x\n")
    resp = requests.post(
        url + "/batches",
        json={
            "file": str(tmp_path / "job.py"),
            "args": ["10"],
            "pyFiles": [str(tmp_path / "helper_mod.py")],
            "conf": {"spark.test.batch": "yes"},
            "name": "batch-ok",
        },
        headers=H,
        timeout=10,
    )
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert resp.headers["Location"] == f"/batches/{created['id']}"  # as Livy's 201 answers
    assert set(created) == {"id", "name", "owner", "proxyUser", "state", "appId", "appInfo", "log"}
    assert created["state"] in ("starting", "running") and created["name"] == "batch-ok"
    bid = created["id"]
    assert requests.get(f"{url}/batches/{bid}/state", timeout=10).json()["id"] == bid
    view = _wait_final(url, bid)
    log = _log(url, bid)
    assert view["state"] == "success", log
    result = [line for line in log if line.startswith("RESULT")]
    assert result == ["RESULT 90 is.hail.kryo.HailKryoRegistrator yes local[2]"]
    assert view["appId"] and view["appId"].startswith("local-")
    paged = requests.get(f"{url}/batches/{bid}/log?from=1&size=2", timeout=10).json()
    assert paged["from"] == 1 and paged["log"] == log[1:3] and paged["total"] == len(log)
    listed = requests.get(url + "/batches?from=0&size=100", timeout=10).json()
    assert bid in [b["id"] for b in listed["sessions"]]
    assert requests.delete(f"{url}/batches/{bid}", headers=H, timeout=30).json() == {"msg": "deleted"}
    assert requests.get(f"{url}/batches/{bid}", timeout=10).status_code == 404


@pytest.mark.slow
def test_failing_batch_goes_dead_with_its_error_in_the_log(livy_server, tmp_path):
    url = livy_server.url
    (tmp_path / "bad.py").write_text(BAD)
    bid = requests.post(url + "/batches", json={"file": str(tmp_path / "bad.py")}, headers=H, timeout=10).json()["id"]
    view = _wait_final(url, bid)
    assert view["state"] == "dead"
    log = _log(url, bid)
    assert any("ValueError: this batch fails on purpose" in line for line in log)
    assert any(re.search(r"spark-submit exited with code [1-9]", line) for line in log)


@pytest.mark.slow
def test_deleting_a_running_batch_kills_it(livy_server, tmp_path):
    url = livy_server.url
    (tmp_path / "slow.py").write_text(SLOW)
    bid = requests.post(url + "/batches", json={"file": str(tmp_path / "slow.py")}, headers=H, timeout=10).json()["id"]
    deadline = time.monotonic() + 120
    while not any("SLEEPING" in line for line in _log(url, bid)):
        assert time.monotonic() < deadline, _log(url, bid)
        time.sleep(0.3)
    pid = livy_server.batches.get(bid).proc.pid
    assert requests.delete(f"{url}/batches/{bid}", headers=H, timeout=30).json() == {"msg": "deleted"}
    assert requests.get(f"{url}/batches/{bid}", timeout=10).status_code == 404
    deadline = time.monotonic() + 15
    while _group_alive(pid):  # the whole process group (spark-submit JVM and its Python) goes
        assert time.monotonic() < deadline, "the batch's processes outlived DELETE"
        time.sleep(0.2)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.mark.parametrize(
    "body,status,fragment",
    [
        ({}, 400, "'file' is required"),
        ({"file": "/no/such/file.py"}, 400, "does not exist"),
        ({"file": "s3://bucket/job.py"}, 400, "local files only"),
        ({"file": "x.py", "executors": 2}, 400, "Unrecognized field 'executors'"),
        ({"file": "x.py", "args": "1 2"}, 400, "'args' must be a list"),
    ],
)
def test_bad_batch_requests(livy_server, body, status, fragment):
    resp = requests.post(livy_server.url + "/batches", json=body, headers=H, timeout=10)
    assert resp.status_code == status
    assert fragment in resp.json()["msg"]
