"""Facts of the Livy REST protocol shared by our client and our embedded server.

Both ends take the request fields from here, so what the client may send and what the
server accepts cannot drift apart (see ``../shared/livy-rest-contract.md``).
"""

from __future__ import annotations

#: Spark resources and placement, the same in ``POST /sessions`` and ``POST /batches``.
_RESOURCE_FIELDS = (
    "jars",
    "pyFiles",
    "files",
    "driverMemory",
    "driverCores",
    "executorMemory",
    "executorCores",
    "numExecutors",
    "archives",
    "queue",
    "name",
    "conf",
)

#: Fields of ``POST /sessions``. ``ttl`` and ``idleTimeout`` are Livy 0.8's; old EMR Livy
#: rejects unknown fields, so clients send only the ones that are set.
SESSION_FIELDS = ("kind", "proxyUser", *_RESOURCE_FIELDS, "heartbeatTimeoutInSecond", "ttl", "idleTimeout")

#: Fields of ``POST /batches`` (``file`` is required).
BATCH_FIELDS = ("file", "proxyUser", "className", "args", *_RESOURCE_FIELDS)

#: Fields of ``POST /sessions/{id}/statements`` and ``.../completion``.
STATEMENT_FIELDS = ("code", "kind")
COMPLETION_FIELDS = ("code", "kind", "cursor")

#: Livy's CSRF header (``livy.server.csrf-protection.enabled``): any value; required on every
#: request other than GET, HEAD and OPTIONS when protection is on.
CSRF_HEADER = "X-Requested-By"
