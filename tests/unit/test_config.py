"""The configuration resolver: one order for every key (arguments > environment > config file >
sparkmagic config > instance metadata > defaults), the provenance of every value, the jobs
section, and clear errors for bad values. Files only: no Spark, no server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hail_emr_lab.config import JOB_KEYS, KEYS, ConfigError, load_config
from hail_emr_lab.jobs.cli import format_settings
from hail_emr_lab.jobs.params import PARAMS, JobParamError, Settings


@pytest.fixture
def files(tmp_path: Path):
    """``(env, write)``: an environment whose config sources are files under ``tmp_path``, and
    ``write(which, data)`` to fill one (``config``, ``sparkmagic``, ``metadata``)."""
    paths = {name: tmp_path / f"{name}.json" for name in ("config", "sparkmagic", "metadata")}
    env = {
        "HAIL_EMR_LAB_CONFIG": str(paths["config"]),
        "HAIL_EMR_LAB_SPARKMAGIC_CONFIG": str(paths["sparkmagic"]),
        "HAIL_EMR_LAB_METADATA": str(paths["metadata"]),
    }

    def write(which: str, data: dict) -> Path:
        paths[which].write_text(json.dumps(data))
        return paths[which]

    return env, write


def test_each_source_in_order_with_its_provenance(files):
    env, write = files
    cfg_path = write("config", {"livy_url": "http://file:8998", "region": "eu-west-1", "prefix": "from-file"})
    spark_path = write("sparkmagic", {"kernel_python_credentials": {"url": "http://spark:8998", "username": "sm"}})
    write("metadata", {"ResourceName": "alice-nb"})
    env = {**env, "HAIL_EMR_LAB_LIVY_URL": "http://env:8998", "HAIL_EMR_LAB_REGION": "us-west-2"}

    cfg = load_config({"livy_url": "http://arg:8998"}, env=env)
    expect = {
        "livy_url": ("http://arg:8998", "argument"),
        "region": ("us-west-2", "environment"),
        "prefix": ("from-file", str(cfg_path)),
        "username": ("sm", str(spark_path)),
        "home": ("/home/ec2-user/SageMaker", "instance metadata"),
        "session_name": ("hail-alice-nb", "instance metadata"),
        "heartbeat_timeout": (600, "default"),
    }
    assert {k: (cfg[k], cfg.source(k)) for k in expect} == expect
    assert [cfg.rank(k) for k in expect] == [0, 1, 2, 3, 4, 4, 5]
    # each source yields to the one above it, key by key
    assert load_config(env=env)["livy_url"] == "http://env:8998"
    no_env = {k: v for k, v in env.items() if not k.endswith(("LIVY_URL", "REGION"))}
    assert (load_config(env=no_env)["livy_url"], load_config(env=no_env)["region"]) == ("http://file:8998", "eu-west-1")
    write("config", {})
    assert load_config(env=no_env).source("livy_url") == str(spark_path)
    assert load_config(env=no_env, use_sparkmagic=False).source("livy_url") == "default"


def test_every_key_has_a_value_and_a_source(files):
    env, _ = files
    shown = load_config(env=env).as_dict()
    assert list(shown)[: len(KEYS)] == list(KEYS)
    assert all(set(row) == {"value", "source"} for row in shown.values())


@pytest.mark.parametrize(
    "key, raw, value",
    [
        ("heartbeat_timeout", "30", 30),
        ("backup_environments", "yes", True),
        ("backup_environments", "OFF", False),
        ("verify", "false", False),
        ("verify", "/etc/ca.pem", "/etc/ca.pem"),
        ("excludes", "*.tmp, data/ ,", ["*.tmp", "data/"]),
        ("jobs", '{"driver_memory": "2g"}', {"driver_memory": "2g"}),
        ("livy_retry_timeout", "2.5", 2.5),
    ],
)
def test_environment_strings_become_the_keys_type(files, key, raw, value):
    env, _ = files
    cfg = load_config(env={**env, f"HAIL_EMR_LAB_{key.upper()}": raw})
    assert cfg[key] == value and cfg.source(key) == "environment"


@pytest.mark.parametrize(
    "key, raw, message",
    [
        ("heartbeat_timeout", "ten", "heartbeat_timeout must be a whole number, got 'ten'"),
        ("backup_environments", "maybe", "backup_environments must be true or false, got 'maybe'"),
        ("jobs", "[1]", "jobs must be a JSON object"),
        ("jobs", "{bad", "jobs must be a JSON object"),
        ("livy_retry_timeout", "0", "livy_retry_timeout must be more than 0 seconds"),
        ("livy_retry_timeout", "soon", "livy_retry_timeout must be a number of seconds"),
        ("auth", "ntlm", "auth must be none, basic, kerberos or sigv4, got 'ntlm' (from environment)"),
    ],
)
def test_bad_values_name_the_key_and_the_value(files, key, raw, message):
    env, _ = files
    with pytest.raises(ConfigError) as err:
        load_config(env={**env, f"HAIL_EMR_LAB_{key.upper()}": raw})
    assert message in str(err.value)


def test_bad_files_say_which_file_and_what_to_do(files):
    env, write = files
    path = write("config", {})
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"config file .*config\.json is not valid JSON \(line 1.*fix or remove"):
        load_config(env=env)
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="must hold a JSON object, not list"):
        load_config(env=env)
    write("config", {"livy_ulr": "http://x"})
    assert load_config(env=env).values["_unknown_keys"] == ["livy_ulr"]  # reported, not fatal


def test_jobs_section_same_order_with_provenance(files):
    env, write = files
    path = write("config", {"jobs": {"driver_memory": "2g", "bucket": "jobs-file-bucket"}, "bucket": "general"})
    jobs = load_config(env=env).jobs
    assert (jobs.get("driver_memory"), jobs.source("driver_memory")) == ("2g", f'{path} ("jobs": "driver_memory")')
    # at the same source, the job key wins over its general counterpart
    assert (jobs.get("bucket"), jobs.source("bucket")) == ("jobs-file-bucket", f'{path} ("jobs": "bucket")')
    assert (jobs.get("release_label"), jobs.source("release_label")) == ("emr-6.15.0-latest", "default")
    assert jobs.get("application_id") is None and jobs.source("application_id") == "default"

    env = {**env, "HAIL_EMR_LAB_JOBS_DRIVER_MEMORY": "3g", "HAIL_EMR_LAB_BUCKET": "env-general"}
    jobs = load_config(env=env).jobs
    assert (jobs.get("driver_memory"), jobs.source("driver_memory")) == ("3g", "environment (HAIL_EMR_LAB_JOBS_DRIVER_MEMORY)")
    # a general value from a stronger source (the environment) beats the job key in the file
    assert (jobs.get("bucket"), jobs.source("bucket")) == ("env-general", "bucket (environment)")

    jobs = load_config(env=env, job_overrides={"driver_memory": "5g", "bucket": "flag-bucket"}).jobs
    assert (jobs.get("driver_memory"), jobs.source("driver_memory")) == ("5g", "argument (--driver-memory)")
    assert (jobs.get("bucket"), jobs.source("bucket")) == ("flag-bucket", "argument (--bucket)")
    # the general livy_url is the jobs url when nothing more specific is set
    jobs = load_config({"livy_url": "http://arg:8998"}, env=env).jobs
    assert (jobs.get("url"), jobs.source("url")) == ("http://arg:8998", "livy_url (argument)")


def test_jobs_rows_are_in_config_display_and_the_jobs_cli_shows_the_same(files, monkeypatch):
    env, write = files
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    path = write("config", {"jobs": {"executor_memory": "8g"}, "livy_url": "http://u:secret@host:8998"})
    shown = load_config().as_dict()
    assert shown["jobs.executor_memory"] == {"value": "8g", "source": f'{path} ("jobs": "executor_memory")'}
    assert shown["jobs.url"] == {"value": "http://***@host:8998", "source": f"livy_url ({path})"}
    assert "jobs.application_id" not in shown  # unset job settings are left out
    text = format_settings({"num_executors": "4"})
    for key, row in {**shown, "jobs.num_executors": {"value": "4", "source": "argument (--num-executors)"}}.items():
        if key.startswith("jobs."):
            assert any(line.split() == [key, str(row["value"]), *row["source"].split()] for line in text.splitlines())
    assert "secret" not in text


def test_bad_jobs_section_is_reported_when_jobs_use_it(files, monkeypatch):
    env, write = files
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    write("config", {"jobs": {"drivr_memory": "2g"}, "livy_url": "http://h:8998"})
    assert load_config()["livy_url"] == "http://h:8998"  # %hail connect is not blocked by a typo in "jobs"
    with pytest.raises(JobParamError, match=r"unknown job setting\(s\) \['drivr_memory'\]"):
        Settings({})
    assert "Warning: unknown job setting(s) ['drivr_memory']" in format_settings()
    write("config", {"jobs": ["driver_memory"]})
    with pytest.raises(JobParamError, match='"jobs" in .* must be a JSON object of job settings, not list'):
        Settings({})


def test_bad_job_values_name_flag_variable_and_source(files, monkeypatch):
    env, _ = files
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HAIL_EMR_LAB_JOBS_NUM_EXECUTORS", "zero")
    with pytest.raises(JobParamError, match=r"--num-executors \(from environment \(HAIL_EMR_LAB_JOBS_NUM_EXECUTORS\)\)"):
        Settings({}).get("num_executors")
    with pytest.raises(JobParamError, match=r"--job-queue, HAIL_EMR_LAB_JOBS_JOB_QUEUE, or \"job_queue\" under \"jobs\""):
        Settings({}).require("job_queue", "aws-batch")


def test_one_table_of_job_keys():
    assert list(PARAMS) == list(JOB_KEYS)
    for name, (default, general, help_text) in JOB_KEYS.items():
        assert (PARAMS[name].default, PARAMS[name].general_key, PARAMS[name].help) == (default, general, help_text)


def test_jobs_config_command(files, monkeypatch, capsys):
    from hail_emr_lab.cli import main

    env, write = files
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HAIL_EMR_LAB_JOBS_REGION", "eu-west-1")
    assert main(["jobs", "config", "--driver-memory", "4g"]) == 0
    lines = [line.split(None, 2) for line in capsys.readouterr().out.splitlines()]
    assert ["jobs.driver_memory", "4g", "argument (--driver-memory)"] in lines
    assert ["jobs.region", "eu-west-1", "environment (HAIL_EMR_LAB_JOBS_REGION)"] in lines
    assert ["jobs.log_group", "/aws/batch/job", "default"] in lines
    monkeypatch.setenv("HAIL_EMR_LAB_JOBS_VCPUS", "many")
    assert main(["jobs", "config", "--bucket", "a..b"]) == 0  # shown, with what submit would refuse
    out = capsys.readouterr().out
    assert "Warning: --bucket (from argument (--bucket)): 'a..b' is not an S3 bucket name" in out
    assert "Warning: --vcpus (from environment (HAIL_EMR_LAB_JOBS_VCPUS)): 'many' is not a whole number" in out
    monkeypatch.delenv("HAIL_EMR_LAB_JOBS_VCPUS")
    from hail_emr_lab.jobs import notebook

    assert notebook.run_magic("jobs", "config --num-executors 2", None) is None  # %hail jobs config
    shown = [line.split(None, 2) for line in capsys.readouterr().out.splitlines()]
    assert ["jobs.num_executors", "2", "argument (--num-executors)"] in shown
    assert ["jobs.region", "eu-west-1", "environment (HAIL_EMR_LAB_JOBS_REGION)"] in shown
