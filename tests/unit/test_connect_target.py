"""Which target ``%hail connect`` picks for a given set of flags, environment and config files,
and where that choice came from. Plain function calls: nothing is contacted (``choose_target``
decides; only ``resolve_target`` would look up a cluster or start the embedded server).

The configuration is the real resolver's (``load_config``) over files in a private directory
(the autouse ``isolated_config`` fixture points every source there).
"""

from __future__ import annotations

import json

import pytest

from hail_emr_lab.config import load_config
from hail_emr_lab.errors import HailEmrLabError
from hail_emr_lab.notebook.connect import ConnectOptions, TargetChoice, choose_target, resolve_target


def _write(path, data) -> str:
    path.write_text(json.dumps(data))
    return str(path)


@pytest.fixture
def config_file(isolated_config):
    return isolated_config / "config.json"


@pytest.fixture
def sparkmagic_file(isolated_config):
    return isolated_config / "sparkmagic.json"


@pytest.mark.parametrize("flags, expected", [
    (dict(url="http://10.0.0.5:8998"), TargetChoice("url", "http://10.0.0.5:8998", "argument")),
    (dict(cluster_id="j-ABC"), TargetChoice("cluster_id", "j-ABC", "argument")),
    (dict(cluster_name="hail"), TargetChoice("cluster_name", "hail", "argument")),
    (dict(local=True), TargetChoice("local", None, "--local")),
    (dict(serverless_app="00fexample"), TargetChoice("serverless_app", "00fexample", "argument")),
    # --url with --serverless-app only overrides the application's endpoint: still the application.
    (dict(serverless_app="00fexample", url="http://127.0.0.1:1"), TargetChoice("serverless_app", "00fexample", "argument")),
])
def test_a_flag_names_the_target_over_any_configuration(flags, expected, monkeypatch, config_file):
    monkeypatch.setenv("HAIL_EMR_LAB_LIVY_URL", "http://from-env:8998")
    _write(config_file, {"cluster_id": "j-FROMFILE"})
    assert choose_target(ConnectOptions(**flags), load_config()) == expected


@pytest.mark.parametrize("flags, named", [
    (dict(url="http://h:8998", cluster_id="j-A"), "--url and --cluster-id"),
    (dict(cluster_name="n", local=True), "--cluster-name and --local"),
    (dict(serverless_app="00f", cluster_id="j-A"), "--serverless-app and --cluster-id"),
    (dict(serverless_app="00f", local=True), "--serverless-app and --local"),
])
def test_two_targets_in_flags_are_refused_by_name(flags, named):
    with pytest.raises(HailEmrLabError, match=f"got {named}: give only one target"):
        choose_target(ConnectOptions(**flags), load_config())


def test_nothing_configured_is_the_embedded_server():
    assert choose_target(ConnectOptions(), load_config()) == TargetChoice("local", None, "no endpoint configured")


def test_environment_beats_the_config_file_whatever_the_key(monkeypatch, config_file):
    _write(config_file, {"livy_url": "http://from-file:8998"})
    monkeypatch.setenv("HAIL_EMR_LAB_CLUSTER_ID", "j-FROMENV")
    assert choose_target(ConnectOptions(), load_config()) == TargetChoice("cluster_id", "j-FROMENV", "environment")


def test_config_file_beats_sparkmagic(config_file, sparkmagic_file):
    _write(sparkmagic_file, {"kernel_python_credentials": {"url": "http://from-sparkmagic:8998"}})
    path = _write(config_file, {"cluster_name": "hail"})
    assert choose_target(ConnectOptions(), load_config()) == TargetChoice("cluster_name", "hail", path)


def test_sparkmagic_alone_names_its_url(sparkmagic_file):
    path = _write(sparkmagic_file, {"kernel_python_credentials": {"url": "http://from-sparkmagic:8998"}})
    assert choose_target(ConnectOptions(), load_config()) == TargetChoice("url", "http://from-sparkmagic:8998", path)


def test_one_source_with_several_targets_prefers_url_then_cluster_id_then_name_then_serverless(config_file):
    keys = {"serverless_app": "00f", "cluster_name": "hail", "cluster_id": "j-A", "livy_url": "http://h:8998"}
    path = str(config_file)
    for kind, key in [("url", "livy_url"), ("cluster_id", "cluster_id"), ("cluster_name", "cluster_name"),
                      ("serverless_app", "serverless_app")]:
        _write(config_file, keys)
        assert choose_target(ConnectOptions(), load_config()) == TargetChoice(kind, keys[key], path)
        del keys[key]


def test_serverless_app_from_the_environment(monkeypatch, config_file):
    _write(config_file, {"livy_url": "http://from-file:8998"})
    monkeypatch.setenv("HAIL_EMR_LAB_SERVERLESS_APP", "00fenv")
    assert choose_target(ConnectOptions(), load_config()) == TargetChoice("serverless_app", "00fenv", "environment")


def test_a_url_target_says_where_it_came_from_and_whether_it_is_this_machine(config_file):
    # A URL needs no lookup, so resolve_target contacts nothing for it.
    path = _write(config_file, {"livy_url": "http://127.0.0.1:8998/"})
    target = resolve_target(ConnectOptions(), load_config())
    assert (target.url, target.how, target.local) == ("http://127.0.0.1:8998", f"config ({path})", True)
    target = resolve_target(ConnectOptions(url="http://10.0.0.5:8998"), load_config())
    assert (target.url, target.how, target.local) == ("http://10.0.0.5:8998", "url", False)
