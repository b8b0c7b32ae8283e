"""What the S3 server honours of the semantics the sync relies on, found out once per home.

AWS S3 honours conditional writes (``If-None-Match: *`` / ``If-Match`` on PutObject, S3 user
guide "Conditional requests") and keeps folder-marker keys ending in ``/``. S3-compatible
servers may not: ``rclone serve s3`` (the lab's local S3) accepts and ignores the conditions
and stores ``dir/`` as a zero-byte file ``dir`` (which then refuses any key below it).

:func:`server_facts` assumes AWS's semantics (no request) unless ``HAIL_EMR_LAB_S3_PROBE=1``
is set (``hail-emr-lab lab`` sets it for its local S3; set it for any S3-compatible server):
then it probes both with six small requests under the remote trash (never restored), the
first time a backup talks to a target, and keeps the answer in the state, so a backup with
nothing to do still makes no request. What the sync does without them:

* no conditional writes: uploads go ahead unconditionally, so another machine backing up
  the same prefix can overwrite this one's objects unnoticed (no cross-writer conflict
  detection); ``sync status`` says so once (:func:`degradations`).
* no folder markers: empty directories are not backed up (their files, when they get some,
  are); ``sync status`` says so too.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from .keys import TRASH_DIRNAME

if TYPE_CHECKING:
    from .remote import Remote
    from .state import State

_META = "server_facts"
#: Set to 1 to have the sync probe the server (see the module docstring).
PROBE_ENV = "HAIL_EMR_LAB_S3_PROBE"


@dataclass(frozen=True)
class ServerFacts:
    """``conditional_writes``: PutObject honours If-None-Match / If-Match (412 when unmet);
    ``folder_markers``: a key ending in ``/`` is kept as such."""

    conditional_writes: bool = True
    folder_markers: bool = True


def _where(remote: Remote) -> str:
    return f"{remote.client.meta.endpoint_url} {remote.bucket}"


def known_facts(state: State) -> ServerFacts | None:
    """The facts recorded for the state's target, or None when not probed yet."""
    raw = state.meta(_META)
    if not isinstance(raw, dict) or "facts" not in raw:
        return None
    return ServerFacts(**raw["facts"])


def server_facts(state: State, remote: Remote) -> ServerFacts:
    """AWS's semantics unless ``HAIL_EMR_LAB_S3_PROBE=1``; then the facts recorded for this
    endpoint + bucket, probing (and recording) them if needed.

    Raises the client's error when the probe requests themselves fail (S3 unusable)."""
    if os.environ.get(PROBE_ENV, "") not in ("1", "true", "yes"):
        return ServerFacts()
    raw = state.meta(_META)
    if isinstance(raw, dict) and raw.get("where") == _where(remote) and "facts" in raw:
        return ServerFacts(**raw["facts"])
    facts = probe(remote)
    state.set_meta(_META, {"where": _where(remote), "facts": asdict(facts)})
    return facts


def probe(remote: Remote) -> ServerFacts:
    """Ask the server (4-6 requests under ``<prefix>/<trash>/probe-<random>/``, removed after)."""
    from .remote import is_precondition_failed

    client, bucket = remote.client, remote.bucket
    base = f"{remote.target.prefix}/{TRASH_DIRNAME}/probe-{uuid.uuid4().hex[:12]}"
    cond, folder = f"{base}/conditional", f"{base}/folder/"
    client.put_object(Bucket=bucket, Key=cond, Body=b"1")
    conditional = False
    try:
        client.put_object(Bucket=bucket, Key=cond, Body=b"2", IfNoneMatch="*")
    except Exception as exc:
        if not is_precondition_failed(exc):
            raise
        conditional = True
    client.put_object(Bucket=bucket, Key=folder, Body=b"")
    listed: list[dict[str, Any]] = client.list_objects_v2(Bucket=bucket, Prefix=base + "/").get("Contents", [])
    keys = [o["Key"] for o in listed]
    for key in keys:
        client.delete_object(Bucket=bucket, Key=key)
    return ServerFacts(conditional_writes=conditional, folder_markers=folder in keys)


def degradations(facts: ServerFacts | None) -> list[str]:
    """One sentence per semantic the server lacks, for ``sync status``."""
    out = []
    if facts is None:
        return out
    if not facts.conditional_writes:
        out.append("this S3 server ignores conditional writes (If-Match / If-None-Match): a change another "
                   "machine backed up to the same prefix can be overwritten unnoticed (no cross-writer "
                   "conflict detection); back up one home per prefix")
    if not facts.folder_markers:
        out.append("this S3 server cannot keep folder markers: empty directories are not backed up")
    return out
