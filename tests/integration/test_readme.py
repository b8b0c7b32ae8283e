"""Every Python block of the README runs as pasted, in order, on the embedded default.

The blocks are taken from README.md as written and executed one block per cell in a real
IPython kernel whose only configuration is the one ``hail-emr-lab lab`` gives its kernels
(``HAIL_EMR_LAB_LIVY_URL`` of the embedded Livy server, real PySpark + Hail). A block that
needs AWS (an EMR cluster, a real bucket) must say so on its first line with the visible
marker ``# needs AWS``; only those are left out, and they are checked to be well formed
magics. Not covered here: that the AWS-only blocks work against a real EMR cluster.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support.kernel import Kernel, kernel_env

from hail_emr_lab.notebook.magics.args import strip_comment

ROOT = Path(__file__).resolve().parents[2]
AWS_MARKER = "# needs AWS"
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)

pytestmark = pytest.mark.slow


def python_blocks(text: str) -> list[str]:
    """The bodies of the ```python fenced blocks of a Markdown text, in order."""
    return [m.group(1) for m in FENCE.finditer(text)]


def needs_aws(block: str) -> bool:
    return block.lstrip().startswith(AWS_MARKER)


class FreshKernel(Kernel):
    """A kernel without the extension loaded: the README's first block loads it."""

    def load(self) -> None:
        pass


@pytest.mark.parametrize("line, expected", [
    ("connect   # the configuration's Livy", "connect"),
    ("# only a comment", ""),
    ("push df --as 'a # b'  # quoted: kept", "push df --as 'a # b'"),
    ('push "#x"', 'push "#x"'),
    ("connect --url http://h:8998/x#frag", "connect --url http://h:8998/x#frag"),
    (r"push a\ #b", r"push a\ #b"),
    ("-o pcs  # pull it", "-o pcs"),
])
def test_magic_lines_drop_a_trailing_comment_outside_quotes(line, expected):
    # IPython hands a line magic its whole line, comment included; a shell would drop it.
    assert strip_comment(line) == expected


def test_blocks_are_found_and_aws_ones_are_marked():
    blocks = python_blocks((ROOT / "README.md").read_text())
    runnable = [b for b in blocks if not needs_aws(b)]
    assert len(runnable) >= 2, "the README's 'Using it' blocks were not found"
    assert "%load_ext hail_emr_lab" in runnable[0], "the first block should load the extension"
    for block in runnable:
        # An EMR-only target in a block that runs on the embedded default can only fail there.
        assert not re.search(r"--cluster-(id|name)\b", block), f"needs AWS but is not marked:\n{block}"
        assert "--serverless-app" not in block, f"needs AWS but is not marked:\n{block}"


def test_readme_python_blocks_run_in_a_kernel(livy_server, tmp_path):
    blocks = [b for b in python_blocks((ROOT / "README.md").read_text()) if not needs_aws(b)]
    kernel = FreshKernel(kernel_env(str(tmp_path), HAIL_EMR_LAB_LIVY_URL=livy_server.url), cwd=str(tmp_path))
    try:
        for block in blocks:
            res = kernel.run(block, timeout=900)
            assert res.status == "ok", f"README block failed:\n{block}\n---\n{res.text}"
            assert "Error" not in res.stderr, f"README block wrote an error:\n{block}\n---\n{res.stderr}"
        if any(b.startswith("%%hail -o pcs") for b in blocks):
            # The PCA example pulled its scores (one row per sample) into a local pandas DataFrame.
            assert kernel.value("[type(pcs).__name__, len(pcs)]") == ["DataFrame", 100]
    finally:
        kernel.run("%hail cleanup", timeout=120)
        kernel.shutdown()
