"""Facts of the Livy REST protocol shared by our client and our embedded server.

Both ends take the request fields from here, so what the client may send and what the
server accepts cannot drift apart (Apache Livy REST API docs).
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

#: Fields of Livy's session object (``SessionInfo`` in Livy's ``HttpMessages``), in every view of
#: a session. Unset sizing fields are 0 (integers), null (strings) or empty (lists, ``conf``).
SESSION_INFO_FIELDS = (
    "id",
    "name",
    "appId",
    "owner",
    "proxyUser",
    "state",
    "kind",
    "appInfo",
    "log",
    "ttl",
    "driverMemory",
    "driverCores",
    "executorMemory",
    "executorCores",
    "conf",
    "archives",
    "files",
    "heartbeatTimeoutInSecond",
    "jars",
    "numExecutors",
    "pyFiles",
    "queue",
)

#: Spark conf keys with this prefix carry Livy's own session settings to the driver (Livy's
#: ``RSCConf.LIVY_SPARK_PREFIX``): ``spark.__livy__.livy.rsc.retained-statements`` sets
#: ``livy.rsc.retained-statements``. They are Livy settings, not Spark settings.
LIVY_CONF_PREFIX = "spark.__livy__."

#: Livy session settings (``RSCConf``) a session honours, with Livy's defaults: statements
#: kept per session, rows a SQL statement returns, bytes of one statement's output.
RSC_DEFAULTS = {
    "livy.rsc.retained-statements": 100,
    "livy.rsc.sql.num-rows": 1000,
    "livy.rsc.rpc.max.size": 50 * 1024 * 1024,
}

#: Livy's answer to a statement without ``kind`` in a session of kind ``shared`` (its REPL's
#: ``Session.execute``).
SHARED_SESSION_NEEDS_KIND = "Code type should be specified if session kind is shared"
