"""The embedded Livy-protocol server: Apache Livy's REST API over real PySpark + Hail.

``server.EmbeddedLivy`` serves the HTTP API; each interactive session is its own worker
process (``worker``) holding a ``SparkSession`` with Hail's Spark configuration, running
statements with Livy's PySpark REPL semantics (``repl``). ``batches`` runs files with
pyspark's ``spark-submit``. ``launcher`` starts or reuses the server for a notebook,
``devstack`` runs it with the embedded S3 and JupyterLab; ``livy_cli`` and ``lab_cli`` are the
command lines ``hail-emr-lab local-livy`` and ``hail-emr-lab lab``.
"""
