"""What a finished progress line leaves behind (no kernel: the line goes to stderr)."""

from __future__ import annotations

import time

from hail_emr_lab.notebook.progress import Progress


def test_finished_record_drops_the_live_detail_line(capsys):
    # A Spark job line read while the statement ran must not stay in the record as "running".
    progress = Progress("hail", detail_source=lambda: "Spark job 6 running: 0/2 tasks", detail_every=0.05,
                        show_after=0.0, tick=0.05)
    progress.update(0.5, "statement 9 running")
    deadline = time.monotonic() + 10
    while "Spark job 6" not in capsys.readouterr().err:
        assert time.monotonic() < deadline, "the detail line was never shown while running"
        time.sleep(0.05)
    progress.finish("statement 9 finished in 10.8 s")
    record = capsys.readouterr().err.rsplit("\r", 1)[-1]
    assert "statement 9 finished in 10.8 s" in record and "100%" in record
    assert "Spark job" not in record and "running" not in record, record
