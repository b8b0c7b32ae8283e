"""Render and validate the lifecycle scripts for every parameter combination; validation must
reject scripts SageMaker or an offline instance would choke on; bad input gets clear errors."""

from __future__ import annotations

import base64
import itertools
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from hail_emr_lab import lifecycle
from hail_emr_lab.lifecycle import LifecycleError, LifecycleParams
from hail_emr_lab.lifecycle.validate import MAX_BASE64_CHARS

CLUSTERS = [
    {},
    {"cluster_id": "j-2AXXXXXXGAPLF"},
    {"cluster_name": "hail cluster (prod)"},
    {"livy_url": "http://10.0.0.5:8998"},
]
SOURCES = ["s3", "pypi"]
EXTRAS = [
    {},
    {"region": "eu-west-2", "prefix": "alice", "plots_dir": "/mnt/plots", "read_tags": False},
]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hail_emr_lab", "lifecycle", *args], capture_output=True, text=True, check=False
    )


def assigned(script: str, var: str) -> str:
    """The value a rendered script assigns to ``var`` (as bash would see it)."""
    for line in script.splitlines():
        if line.startswith(var + "="):
            return shlex.split(line.split("=", 1)[1])[0] if line.split("=", 1)[1] else ""
    raise AssertionError(f"{var} not assigned")


@pytest.mark.parametrize(
    "cluster,source,extra",
    list(itertools.product(CLUSTERS, SOURCES, EXTRAS)),
    ids=lambda v: ",".join(f"{k}" for k in v) if isinstance(v, dict) else v,
)
def test_render_then_validate_every_combination(tmp_path, cluster, source, extra):
    params = LifecycleParams(bucket="hel-bucket", package_source=source, **cluster, **extra)
    written = lifecycle.render(params, tmp_path)
    assert [p.name for p in written] == ["on-create.sh", "on-start.sh"]
    report = lifecycle.validate_dir(tmp_path)
    assert report == {"on-create.sh": [], "on-start.sh": []}
    start = (tmp_path / "on-start.sh").read_text()
    assert len(base64.b64encode(start.encode())) <= MAX_BASE64_CHARS
    for key, value in {**cluster, **extra, "bucket": "hel-bucket", "package_source": source}.items():
        expected = ("1" if value else "0") if isinstance(value, bool) else value
        assert assigned(start, key.upper()) == expected
    for key in {"cluster_id", "cluster_name", "livy_url"} - set(cluster):
        assert assigned(start, key.upper()) == ""
    # Offline scripts never install from the package index; pypi scripts do.
    index_install = '"$CONDA_ENV/bin/pip" install "${WHEEL:-hail-emr-lab}"'
    assert (index_install in start) == (source == "pypi")
    assert ("--no-index" in start) == (source == "s3")
    assert (tmp_path / "on-start.sh").stat().st_mode & 0o111


def test_cli_render_and_validate(tmp_path):
    out = tmp_path / "rendered"
    done = cli("render", "--bucket", "hel-bucket", "--cluster-id", "j-ABC123", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "on-start.sh: ok (base64" in done.stdout
    done = cli("validate", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": ok (base64") == 2


def test_rendered_scripts_are_valid_under_the_platform_path(tmp_path):
    """bash -n with SageMaker's PATH and cwd /: nothing relies on the caller's environment."""
    lifecycle.render(LifecycleParams(bucket="hel-bucket"), tmp_path)
    for name in lifecycle.SCRIPTS:
        done = subprocess.run(
            ["/bin/bash", "-n", str(tmp_path / name)],
            cwd="/",
            env={"PATH": "/sbin:/bin:/usr/sbin:/usr/bin"},
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr


@pytest.fixture
def rendered(tmp_path) -> Path:
    lifecycle.render(LifecycleParams(bucket="hel-bucket", livy_url="http://10.0.0.5:8998"), tmp_path)
    return tmp_path


def _edit(path: Path, extra: str) -> None:
    path.write_text(path.read_text() + extra)


def test_validate_rejects_an_oversized_script(rendered):
    _edit(rendered / "on-start.sh", "".join(f"echo padding line {i} to exceed the limit\n" for i in range(400)))
    problems = lifecycle.validate_dir(rendered)["on-start.sh"]
    assert any("over SageMaker's limit of 16384" in p for p in problems), problems
    done = cli("validate", str(rendered))
    assert done.returncode == 1
    assert "over SageMaker's limit" in done.stdout
    assert "not ready for SageMaker" in done.stderr


def test_validate_rejects_broken_bash(rendered):
    _edit(rendered / "on-create.sh", "if [ -d / ]; then\n  echo unterminated\n")
    problems = lifecycle.validate_dir(rendered)["on-create.sh"]
    assert any(p.startswith("bash -n:") for p in problems), problems
    assert lifecycle.validate_dir(rendered)["on-start.sh"] == []


def test_validate_runs_shellcheck(rendered):
    _edit(rendered / "on-create.sh", "for f in $(ls /tmp); do rm $f; done\n")
    problems = lifecycle.validate_dir(rendered)["on-create.sh"]
    assert any(p.startswith("shellcheck:") for p in problems), problems


@pytest.mark.parametrize(
    "line,what",
    [
        ("curl -fsSL https://example.com/install.sh | bash", "example.com"),
        ("wget -q https://github.com/x/y/archive/main.zip", "github.com"),
        ('"$CONDA_ENV/bin/pip" install jupyterlab-git', "pip install from the package index"),
        ("conda install -y -c conda-forge nodejs", "conda install"),
        ("jupyter labextension install @jupyter-widgets/jupyterlab-manager", "labextension install"),
        ("git clone https://github.com/hail-is/hail.git", "git clone"),
    ],
)
def test_validate_rejects_internet_downloads_when_rendered_offline(rendered, line, what):
    _edit(rendered / "on-start.sh", line + "\n")
    problems = lifecycle.validate_dir(rendered)["on-start.sh"]
    assert any(what in p for p in problems), problems


def test_validate_allows_s3_and_the_index_for_pypi_scripts(tmp_path):
    lifecycle.render(LifecycleParams(bucket="hel-bucket", package_source="pypi"), tmp_path)
    _edit(tmp_path / "on-start.sh", '"$CONDA_ENV/bin/pip" install jupyterlab-git\n')
    assert lifecycle.validate_dir(tmp_path)["on-start.sh"] == []
    offline = tmp_path / "offline"
    lifecycle.render(LifecycleParams(bucket="hel-bucket"), offline)
    _edit(offline / "on-start.sh", "curl -fsS https://hel-bucket.s3.us-east-1.amazonaws.com/x -o /tmp/x\n")
    assert lifecycle.validate_dir(offline)["on-start.sh"] == []


def test_validate_rejects_crlf_and_missing_scripts(rendered):
    path = rendered / "on-create.sh"
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    (rendered / "on-start.sh").unlink()
    report = lifecycle.validate_dir(rendered)
    assert any("CRLF" in p for p in report["on-create.sh"])
    assert report["on-start.sh"] == ["on-start.sh is missing"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--bucket", "My_Bucket"], "not a valid S3 bucket name"),
        (["--bucket", "ab"], "not a valid S3 bucket name"),
        (["--bucket", "a..b"], "not a valid S3 bucket name"),
        (["--bucket", "192.168.1.10"], "not a valid S3 bucket name"),
        (["--bucket", "b-1", "--cluster-id", "j-abc"], "is not an EMR cluster id"),
        (["--bucket", "b-1", "--cluster-id", "2AXXXXXXGAPLF"], "is not an EMR cluster id"),
        (["--bucket", "b-1", "--livy-url", "ftp://10.0.0.5:8998"], "must start with http"),
        (["--bucket", "b-1", "--livy-url", "http://"], "no valid host name"),
        (["--bucket", "b-1", "--livy-url", "http://u:pw@h:8998"], "must not contain credentials"),
        (["--bucket", "b-1", "--livy-url", "http://h:99999"], "port"),
        (["--bucket", "b-1", "--cluster-id", "j-ABC", "--livy-url", "http://h:8998"], "conflict"),
        (["--bucket", "b-1", "--cluster-name", "it's"], "cluster name"),
        (["--bucket", "b-1", "--region", "US-EAST-1"], "not an AWS region"),
        (["--bucket", "b-1", "--prefix", "a/b"], "no slashes"),
        (["--bucket", "b-1", "--prefix", "scripts"], "shared prefix"),
        (["--bucket", "b-1", "--package-source", "conda"], "package source must be s3"),
        (["--bucket", "b-1", "--wheel", "foo.tar.gz"], "wheel file name"),
        (["--bucket", "b-1", "--plots-dir", "/x/../etc"], "without '..'"),
    ],
)
def test_bad_input_gets_a_clear_error(tmp_path, args, message):
    done = cli("render", *args, "--out", str(tmp_path / "out"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_template_blocks_and_errors():
    from hail_emr_lab.lifecycle.render import render_text

    text = "#!/bin/bash\n#@if package_source=s3\necho s3\n#@endif\n#@if package_source=pypi\necho pypi\n#@endif\n"
    assert "echo s3" in render_text("x.sh", LifecycleParams(bucket="b-1"), text)
    assert "echo pypi" not in render_text("x.sh", LifecycleParams(bucket="b-1"), text)
    with pytest.raises(LifecycleError, match="without #@endif"):
        render_text("x.sh", LifecycleParams(), "#!/bin/bash\n#@if bucket=x\n")
    with pytest.raises(LifecycleError, match="unknown"):
        render_text("x.sh", LifecycleParams(), "#!/bin/bash\nX=''  #@nonsense\n")


def test_sagemaker_name_limit():
    from hail_emr_lab.lifecycle.params import check_sagemaker_name

    assert check_sagemaker_name("a" * 63)
    for bad in ("a" * 64, "-x", "x-", "has space", "under_score", ""):
        with pytest.raises(LifecycleError, match="1-63 letters"):
            check_sagemaker_name(bad)


#: Bucket names on both sides of each of Amazon S3's "Bucket naming rules".
BUCKET_EDGES = ["abc", "a" * 63, "my.bucket-1", "xn-a", "ab", "a" * 64, "My-Bucket", "-bucket", "bucket.", "a..b",
                "192.168.5.4", "xn--bucket", "sthree-x", "amzn-s3-demo-x", "b-s3alias", "b--ol-s3", "b.mrap",
                "b--x-s3", "b--table-s3"]


def test_on_start_checks_bucket_tags_with_the_same_rule(rendered):
    """A bucket from an instance tag is checked by the rendered script's ``valid``: it must accept
    exactly the names ``lifecycle render`` accepts (``aws_names``)."""
    from hail_emr_lab.aws_names import bucket_name_problem

    script = (rendered / "on-start.sh").read_text()
    start = script.index("valid() {")
    func = script[start : script.index("\n}\n", start) + 3]
    checks = "".join(f"if valid bucket {shlex.quote(n)}; then echo ok; else echo bad; fi\n" for n in BUCKET_EDGES)
    out = subprocess.run(["bash", "-c", func + checks], capture_output=True, text=True, check=True).stdout.split()
    assert dict(zip(BUCKET_EDGES, out)) == {n: "bad" if bucket_name_problem(n) else "ok" for n in BUCKET_EDGES}
