"""Batch jobs behind one interface: Livy batches, EMR Serverless, EMR on EKS and AWS Batch.

``manager`` has the operations (submit, status, list, logs, cancel), ``cli`` the
``hail-emr-lab jobs`` command, ``notebook`` the ``%hail submit`` / ``%hail jobs`` entry point,
``store`` the local list of submitted jobs (``store.list_jobs`` feeds the sidebar).
Backend modules import boto3 or the Livy client only when used.
"""

from .base import Job, JobBackend, JobError, JobNotFound, JobSpec, JobState
from .params import JobParamError

__all__ = ["Job", "JobBackend", "JobError", "JobNotFound", "JobParamError", "JobSpec", "JobState"]
