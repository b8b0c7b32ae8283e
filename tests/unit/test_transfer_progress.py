"""A transfer's progress line and the record the sidebar reads, driven by a test clock.

The line is a real :class:`Progress` outside a kernel (a text line on stderr); the sidebar's
record is a real file in a temporary runtime folder, read back by the server's own reader.
"""

from __future__ import annotations

import json
import os

import pytest

from hail_emr_lab.dashboard import payloads, transfers
from hail_emr_lab.notebook.progress import Progress
from hail_emr_lab.notebook.transfer_progress import MIN_INTERVAL, TransferProgress, finishing


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


class Recorded(Progress):
    """A text progress line that also keeps every label it was given."""

    def __init__(self) -> None:
        super().__init__("hail", show_after=0.0, tick=3600)
        self.labels: list[str] = []

    def update(self, fraction, label=""):
        self.labels.append(label)
        super().update(fraction, label)


@pytest.fixture
def runtime(tmp_path):
    return str(tmp_path / "runtime")


def test_the_line_says_what_moves_how_much_the_rate_and_time_left(runtime, capsys):
    clock, bar = Clock(), Recorded()
    moving = TransferProgress("pull", ["gwas"], session_name="hail-me", runtime_dir=runtime, clock=clock, bar=bar)
    moving.on_chunk("gwas", 0, 40_000_000, transport="livy", rows=2_000_000)
    for _ in range(2):
        clock.now += 1
        moving.on_chunk("gwas", moving.current.meter.done + 8_000_000, 40_000_000, transport="livy",
                        rows=2_000_000)
    assert bar.labels[0] == "pulling gwas: waiting for the cluster"
    assert bar.labels[-1] == ("pulling gwas through Livy: 16.0 MB of 40.0 MB · 2,000,000 rows · 8.0 MB/s · "
                              "3 s left")
    (record,) = transfers.running_transfers(runtime)[0]
    assert payloads.field_errors(record, payloads.Transfer) == []
    assert record["kernel_pid"] == os.getpid() and record["session_name"] == "hail-me"
    assert (record["direction"], record["name"], record["transport"]) == ("pull", "gwas", "livy")
    assert (record["done_bytes"], record["total_bytes"], record["rows"]) == (16_000_000, 40_000_000, 2_000_000)
    assert record["rate"] == pytest.approx(8e6) and record["eta"] == pytest.approx(3.0)
    clock.now += 3
    moving.on_chunk("gwas", 40_000_000, 40_000_000, transport="livy", rows=2_000_000)
    moving.finish("ok")
    assert transfers.running_transfers(runtime) == ([], None)  # withdrawn
    assert capsys.readouterr().err.endswith("\r")  # the line is cleared: the result line says the rest
    assert moving.moved("gwas") == "40.0 MB in 5.0 s, mean 8.0 MB/s" and moving.moved("other") is None


def test_redraws_are_throttled_but_the_last_chunk_always_shows(runtime):
    clock, bar = Clock(), Recorded()
    moving = TransferProgress("push", runtime_dir=runtime, clock=clock, bar=bar)
    for i in range(1, 101):  # 100 reports within 1 s
        clock.now += 0.01
        moving.on_chunk("frame", i * 1000, 100_000, transport="livy")
    assert 1 < len(bar.labels) <= 1 / MIN_INTERVAL + 2, bar.labels
    assert bar.labels[-1].startswith("pushing frame through Livy: 100.0 kB of 100.0 kB")
    moving.finish("ok")


@pytest.mark.parametrize("exc, record", [(KeyboardInterrupt, "pull was interrupted; so far pulled t staged as "
                                          "Parquet: 1.0 MB, 10 rows in"),
                                         (RuntimeError, "pull failed; so far pulled t staged as Parquet: 1.0 MB")])
def test_a_failed_or_interrupted_transfer_is_withdrawn_and_says_how_far_it_got(runtime, capsys, exc, record):
    clock, bar = Clock(), Recorded()
    moving = TransferProgress("pull", ["t"], runtime_dir=runtime, clock=clock, bar=bar)
    with pytest.raises(exc):
        with finishing(moving):
            moving.on_chunk("t", 0, 4_000_000, transport="staged", rows=10)
            clock.now += 1
            moving.on_chunk("t", 1_000_000, 4_000_000, transport="staged", rows=10)
            assert len(transfers.running_transfers(runtime)[0]) == 1
            raise exc()
    assert transfers.running_transfers(runtime) == ([], None)
    assert record in capsys.readouterr().err


def test_data_that_came_with_the_answer_is_timed_from_the_question(runtime):
    clock = Clock()
    moving = TransferProgress("pull", ["small"], runtime_dir=runtime, clock=clock, bar=Recorded())
    clock.now += 2
    moving.on_chunk("small", 2_000_000, 2_000_000, transport="livy", rows=5)
    assert moving.summary() == "pulled small through Livy: 2.0 MB, 5 rows in 2.0 s (mean 1.0 MB/s)"
    moving.finish("ok")


def test_the_reader_refuses_what_it_cannot_trust(runtime):
    folder = transfers.transfers_dir(runtime)
    folder.mkdir(parents=True)
    # A kernel that died mid-transfer (no such process): its record is deleted, not shown.
    dead = folder / f"{2 ** 22 + 7}.json"
    dead.write_text(json.dumps({"name": "x"}))
    # A record of a live process that does not fit the payload type is reported.
    (folder / f"{os.getpid()}.json").write_text(json.dumps({"name": "x", "done_bytes": "many"}))
    found, problem = transfers.running_transfers(runtime)
    assert found == [] and not dead.exists()
    assert f"{os.getpid()}.json: not a transfer record" in problem and "$.direction: missing" in problem


def test_the_published_record_is_private_to_the_user(tmp_path):
    runtime = str(tmp_path / "fresh")
    moving = TransferProgress("pull", runtime_dir=runtime, clock=Clock(), bar=Recorded())
    moving.on_chunk("x", 0, 10, transport="livy")
    folder = transfers.transfers_dir(runtime)
    assert folder.stat().st_mode & 0o777 == 0o700
    assert (folder / f"{os.getpid()}.json").stat().st_mode & 0o777 == 0o600
    moving.finish("ok")
    assert list(folder.iterdir()) == []


def test_a_count_that_starts_again_restarts_the_rate_instead_of_failing_the_transfer(runtime):
    clock = Clock()
    moving = TransferProgress("push", runtime_dir=runtime, clock=clock, bar=Recorded())
    clock.now += 1
    moving.on_chunk("f", 5_000_000, 10_000_000, transport="staged")
    clock.now += 1
    moving.on_chunk("f", 1_000_000, 10_000_000, transport="staged")
    assert moving.current.meter.done == 1_000_000 and moving.current.meter.rate() is not None
    moving.finish("ok")


def test_the_time_left_is_rounded_up(runtime):
    clock = Clock()
    moving = TransferProgress("pull", runtime_dir=runtime, clock=clock, bar=Recorded())
    moving.on_chunk("x", 0, 10_000_000, transport="livy")
    clock.now += 1
    moving.on_chunk("x", 9_500_000, 10_000_000, transport="livy")
    assert moving.line(moving.current).endswith("· 9.5 MB/s · 1 s left")
    moving.finish("ok")
