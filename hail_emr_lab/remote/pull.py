"""Cluster side of ``-o NAME``: choose each value's transport and print one marker line.

Exec'd after ``dataframe.py`` (inline encoding) and ``staged.py`` (Parquet staging). ``via``:
``"livy"`` sends every value inline through Livy; ``"staged"`` writes every frame as Parquet
to a staging location the notebook named; ``"auto"`` stages a frame whose estimated size is
above ``stage_above`` bytes. When Spark cannot estimate a plan (a Hail Table's RDD, say), the
first ``SAMPLE_ROWS`` rows are collected to measure a row's size, then at most ``stage_above``
bytes' worth of rows by that measure: if that is all there is, it travels inline, else the frame
is staged. A staged frame is never collected on the driver beyond those two bounded reads.
"""

import json

if "stage_frame" not in globals():  # imported locally (tests); on the cluster the parts came first
    from hail_emr_lab.remote.dataframe import MARKER, encode_frame, encode_spark, frame_of, keep_inline
    from hail_emr_lab.remote.staged import StagingRefused, estimate, row_width, stage_frame

VIAS = ("auto", "livy", "staged")
#: Rows collected first to measure a frame Spark cannot size (a Hail Table's RDD, say).
SAMPLE_ROWS = 1000


def _raw_size(blob):
    """Uncompressed bytes of an inline encoding (an Arrow IPC payload, or the codec's bytes)."""
    return int(getattr(blob, "raw_size", None) or len(blob))


def pull(ns, names, limit=None, inline_max=8000000, use_arrow=None, via="livy", stagings=None,
         stage_above=128000000):
    """Send each variable in ``names`` of namespace ``ns``; prints one marker line of entries.

    ``stagings``: the notebook's candidate locations (``[{"url", "token", "local"}]``), tried in
    order. Raises ``NameError`` for an unknown name, :class:`StagingRefused` when ``via`` is
    ``"staged"`` and nothing can be staged.
    """
    if via not in VIAS:
        raise ValueError("via must be one of %s, got %r" % (", ".join(VIAS), via))
    out = []
    budget = int(inline_max)
    for name in names:
        if name not in ns:
            raise NameError(
                "name %r is not defined in the Livy session, so -o %s has nothing to pull" % (name, name)
            )
        kind, frame = frame_of(ns[name], limit)
        entry = {"name": name, "kind": kind or "json"}
        staged, inline = _send(kind, frame, limit, use_arrow, via, stagings, int(stage_above), entry)
        if staged is not None:
            entry["format"], fields = staged
            entry.update(fields)
        else:
            fmt, blob, rows, truncated, extra = inline
            entry.update(format=fmt, rows=rows, truncated=bool(truncated))
            entry.update(extra)
            budget = keep_inline(entry, blob, budget)
        out.append(entry)
    print(MARKER + json.dumps(out))


def _send(kind, frame, limit, use_arrow, via, stagings, stage_above, entry):
    """``(staged, None)`` or ``(None, inline encoding)`` for one value (see the module docstring)."""
    if via == "staged":
        return stage_frame(kind, frame, stagings, limit), None
    if via == "livy" or not stagings or kind is None:
        return None, encode_frame(kind, frame, limit, use_arrow)
    size = estimate(kind, frame, limit)
    if size is None:
        if limit is not None and int(limit) <= SAMPLE_ROWS:
            return None, encode_frame(kind, frame, limit, use_arrow)
        sample = encode_spark(frame, SAMPLE_ROWS, use_arrow)
        if not sample[3]:  # no more rows than the sample: that is the whole (small) result
            return None, sample
        # Bytes per row measured, not Spark's schema default (one element per array, 20 bytes a string).
        width = max(row_width(frame), _raw_size(sample[1]) // max(1, sample[2]))
        del sample
        cap = max(1, stage_above // width)
        if limit is not None and int(limit) <= cap:
            return None, encode_frame(kind, frame, limit, use_arrow)
        probe = encode_spark(frame, cap, use_arrow)
        if not probe[3]:  # all rows fit under the cap: that is the whole result
            return None, probe
        size = stage_above + 1
    if size <= stage_above:
        return None, encode_frame(kind, frame, limit, use_arrow)
    try:
        return stage_frame(kind, frame, stagings, limit), None
    except StagingRefused as exc:  # checked before anything was written: inline is still right
        entry["staging_refused"] = str(exc)
        return None, encode_frame(kind, frame, limit, use_arrow)
