"""Where ``-o`` may stage results: the user's own prefix, a folder proven shared, never the backup."""

from __future__ import annotations

import pytest

from hail_emr_lab.config import Config
from hail_emr_lab.notebook import staging
from hail_emr_lab.remote import staged as rstaged
from hail_emr_lab.sync.excludes import STAGING_DIR, Excludes


def _config(**values) -> Config:
    cfg = Config()
    cfg.values.update(values)
    return cfg


def test_s3_staging_is_under_the_users_prefix():
    assert staging.s3_root(_config(bucket="lab", prefix="/alice/")) == "s3://lab/alice/.hail-emr-lab/staging/"
    assert staging.s3_root(_config(bucket="lab")) is None
    with pytest.raises(staging.StagingError, match="cannot stage -o results in S3"):
        staging.s3_root(_config(bucket="lab", prefix="../bob"))


def test_the_cluster_refuses_s3_locations_outside_a_staging_folder():
    ok = "s3://lab/alice/.hail-emr-lab/staging/0123abcd/"
    assert rstaged.check_location({"url": ok, "local": False}) == ok + "data"
    for bad in ("s3://lab/alice/", "s3://lab/alice/notebooks/x/", "hdfs:///tmp/.hail-emr-lab/staging/x/",
                "/tmp/.hail-emr-lab/staging/x/"):
        with pytest.raises(rstaged.StagingRefused):
            rstaged.check_location({"url": bad, "local": False})


def test_a_local_location_needs_the_notebooks_token(tmp_path, monkeypatch):
    monkeypatch.setenv("HAIL_EMR_LAB_LOCAL_DIR", str(tmp_path))
    area = staging.StagingArea.open(_config())
    (loc,) = area.locations
    assert loc.local and loc.url.startswith(str(tmp_path / "staging"))
    assert rstaged.check_location(loc.wire()) == "file://" + loc.url + "data"
    for token in ("f" * 32, None, ""):
        with pytest.raises(rstaged.StagingRefused, match="not visible to the Spark driver"):
            rstaged.check_location(dict(loc.wire(), token=token))
    with pytest.raises(rstaged.StagingRefused, match="not visible to the Spark driver"):  # a folder without one
        rstaged.check_location({"url": str(tmp_path), "local": True, "token": None})
    assert oct((tmp_path / "staging" / loc.url.rstrip("/").rsplit("/", 1)[1]).stat().st_mode & 0o777) == "0o700"
    assert area.cleanup() == [] and list((tmp_path / "staging").iterdir()) == []


def test_the_home_sync_never_backs_up_staged_files():
    assert rstaged.STAGING_MARK == f"/{STAGING_DIR}/"  # the cluster's check and the sync agree
    ex = Excludes()
    assert ex.excluded(f"{STAGING_DIR}/0123/data/part-00000.parquet")
    assert not ex.excluded(".hail-emr-lab/notes.txt")


def test_a_staging_folder_that_cannot_be_made_is_left_out(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("HAIL_EMR_LAB_LOCAL_DIR", str(blocker))
    area = staging.StagingArea.open(_config(bucket="lab", prefix="alice"))
    assert [loc.local for loc in area.locations] == [False]  # S3 is still offered
    assert "the local staging folder" in area.unavailable[0]
    area = staging.StagingArea.open(_config(bucket="lab", prefix="../bob"))
    assert area.locations == [] and len(area.unavailable) == 2


@pytest.mark.parametrize("limit", [None, 2, 10])
def test_a_staged_pandas_frame_comes_back_as_it_was(tmp_path, monkeypatch, limit):
    """Column labels that are not strings, a named column index and the row index (also when
    ``-n`` cuts the frame) come back as the inline transport brings them, not as strings / 0..n-1."""
    import numpy as np
    import pandas as pd

    monkeypatch.setenv("HAIL_EMR_LAB_LOCAL_DIR", str(tmp_path))
    area = staging.StagingArea.open(_config())
    (loc,) = area.locations
    pdf = pd.DataFrame(np.arange(12.0).reshape(4, 3), index=pd.RangeIndex(100, 104))
    named = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}, index=pd.Index(["r1", "r2"], name="rows"))
    named.columns.name = "fields"
    repeated = pd.DataFrame([[1, 2], [3, 4]], columns=["a", "a"])
    for i, frame in enumerate((pdf, named, repeated)):
        wire = dict(loc.wire(), url=loc.wire()["url"])
        fields = rstaged.stage_pandas(frame, wire, limit)
        got, rows, truncated, _ = area.read(dict(format="parquet-pandas", name=f"x{i}", **fields), limit)
        want = frame if limit is None else frame.iloc[:limit]
        pd.testing.assert_frame_equal(got, want)
        assert (rows, truncated) == (len(want), len(want) < len(frame))
        area.cleanup()
        area = staging.StagingArea.open(_config())
        (loc,) = area.locations
