"""``hail-emr-lab lifecycle``: render, validate and install SageMaker lifecycle scripts.

::

    hail-emr-lab lifecycle render --bucket B [--cluster-id ID | --cluster-name N | --livy-url URL]
                                  [--region R] [--package-source s3|pypi] [--prefix P] [--ssm] --out DIR
    hail-emr-lab lifecycle validate DIR
    hail-emr-lab lifecycle install --name NAME [render options | --from DIR] [--region R]
    hail-emr-lab lifecycle iam-policy --bucket B --user U [--ssm [--cluster-id ID]]
    hail-emr-lab lifecycle emr-steps [--bucket B] [--plots-dir /plots] [--web] [--upload]
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
from pathlib import Path

from ..errors import HailEmrLabError


def _add_render_options(parser: argparse.ArgumentParser, bucket_required: bool) -> None:
    parser.add_argument("--bucket", required=bucket_required, help="S3 bucket for home backups, packages, notebooks")
    parser.add_argument("--prefix", help="per-user S3 prefix (default: the notebook instance name)")
    parser.add_argument("--region", help="AWS region (default: from the instance ARN)")
    parser.add_argument("--cluster-id", help="EMR cluster id, j-...")
    parser.add_argument("--cluster-name", help="EMR cluster name (the active cluster with that name)")
    parser.add_argument("--livy-url", help="Livy URL, e.g. http://10.0.0.5:8998")
    parser.add_argument("--plots-dir", help="plot directory on the cluster (default /plots)")
    parser.add_argument("--serverless-app", help="EMR Serverless application id for %%hail connect (with --execution-role)")
    parser.add_argument("--execution-role", help="IAM role ARN the EMR Serverless sessions run as")
    parser.add_argument(
        "--package-source",
        default="s3",
        help="s3: install the wheel from s3://BUCKET/packages/ (no internet needed; default); pypi: the package index",
    )
    parser.add_argument(
        "--wheel",
        help="s3: wheel file name in packages/ (default: newest); pypi: requirement, e.g. hail-emr-lab==0.1.0",
    )
    parser.add_argument(
        "--no-tags",
        dest="read_tags",
        action="store_false",
        help="do not let the instance's hail-emr-lab:* tags override these values at start",
    )
    parser.add_argument(
        "--ssm",
        action="store_true",
        help="install the Session Manager plugin for `hail-emr-lab ssm` (s3: from s3://BUCKET/packages/"
        "session-manager-plugin.rpm; pypi: from its AWS download URL)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``lifecycle`` subcommands."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True

    render = sub.add_parser("render", help="write on-create.sh and on-start.sh with your parameters")
    _add_render_options(render, bucket_required=True)
    render.add_argument("--out", required=True, type=Path, help="directory for the rendered scripts")

    validate = sub.add_parser("validate", help="check rendered scripts against SageMaker's rules")
    validate.add_argument("dir", type=Path, help="directory with on-create.sh and on-start.sh")
    validate.add_argument("--json", action="store_true", help="print the report as JSON")

    install = sub.add_parser("install", help="create or update the SageMaker lifecycle configuration")
    install.add_argument("--name", required=True, help="lifecycle configuration name (at most 63 characters)")
    install.add_argument("--from", dest="from_dir", type=Path, help="install scripts already rendered into DIR")
    _add_render_options(install, bucket_required=False)

    policy = sub.add_parser("iam-policy", help="print a least-privilege IAM policy for one user's notebook role")
    policy.add_argument("--bucket", required=True, help="S3 bucket of the home backups and shared notebooks (the policy covers only the user's prefix and the shared ones)")
    policy.add_argument("--user", required=True, help="user name = S3 prefix (the Quick Start's instance name)")
    policy.add_argument("--instance-name", help="notebook instance name, if not the user name")
    policy.add_argument("--kms-key-arn", help="KMS key of the bucket's default encryption, if any")
    policy.add_argument("--ssm", action="store_true", help="add what `hail-emr-lab ssm` needs (a shell on EMR nodes only)")
    policy.add_argument("--cluster-id", help="with --ssm: only the nodes of this cluster (default: any EMR cluster's)")
    policy.add_argument("--serverless-app", help="add Livy access to this EMR Serverless application (with --execution-role)")
    policy.add_argument("--execution-role", help="with --serverless-app: the role its sessions run as (iam:PassRole on it)")

    steps = sub.add_parser("emr-steps", help="print the EMR plot-directory step and the Livy settings")
    steps.add_argument("--bucket", help="use s3://BUCKET/scripts/emr/create-plots-dir.sh (else an inline command)")
    steps.add_argument("--plots-dir", default="/plots", help="plot directory the step creates on the cluster, owned by livy (default /plots)")
    steps.add_argument("--web", action="store_true", help="Quick Start layout: /var/www/html/plots + symlink")
    steps.add_argument(
        "--format",
        default="all",
        choices=["all", "add-steps", "api", "cloudformation", "configurations"],
        help="which part to print (add-steps: for `aws emr add-steps --steps file://...`)",
    )
    steps.add_argument("--upload", action="store_true", help="upload the script and livy-conf.json to --bucket")


def _params(args: argparse.Namespace):
    from . import params as lp

    return lp.params_from(
        {
            "bucket": args.bucket,
            "prefix": args.prefix,
            "region": args.region,
            "cluster_id": args.cluster_id,
            "cluster_name": args.cluster_name,
            "livy_url": args.livy_url,
            "plots_dir": args.plots_dir,
            "package_source": args.package_source,
            "wheel": args.wheel,
            "read_tags": args.read_tags,
            "ssm": args.ssm,
            "serverless_app": args.serverless_app,
            "serverless_execution_role": args.execution_role,
        }
    )


def _report(report: dict[str, list[str]], directory: Path) -> int:
    failed = False
    for name, problems in report.items():
        path = directory / name
        size = len(base64.b64encode(path.read_bytes())) if path.is_file() else 0
        if problems:
            failed = True
            print(f"{name}: {len(problems)} problem(s)")
            for problem in problems:
                print(f"  - {problem}")
        else:
            print(f"{name}: ok (base64 {size} of 16384 characters)")
    return 1 if failed else 0


def run(args: argparse.Namespace) -> int:
    """Run one ``lifecycle`` action; returns the exit code."""
    from .. import lifecycle

    if args.action == "render":
        params = _params(args).validate()
        written = lifecycle.render(params, args.out)
        for path in written:
            print(f"wrote {path}")
        return _report(lifecycle.validate_dir(args.out), args.out)

    if args.action == "validate":
        report = lifecycle.validate_dir(args.dir)
        if args.json:
            json.dump({"ok": not any(report.values()), "scripts": report}, sys.stdout, indent=2)
            print()
            return 1 if any(report.values()) else 0
        code = _report(report, args.dir)
        if code:
            print(f"{args.dir}: not ready for SageMaker; fix the problems above and render again", file=sys.stderr)
        return code

    if args.action == "install":
        from .params import check_sagemaker_name

        check_sagemaker_name(args.name)
        if args.from_dir:
            result = lifecycle.install(args.name, args.from_dir, region=args.region)
        else:
            if not args.bucket:
                raise HailEmrLabError("install needs --bucket (and the other render options) or --from DIR")
            params = _params(args).validate()
            with tempfile.TemporaryDirectory(prefix="hail-emr-lab-lifecycle-") as tmp:
                lifecycle.render(params, Path(tmp))
                result = lifecycle.install(args.name, Path(tmp), region=args.region)
        print(f"{result['action']} lifecycle configuration {result['name']} ({result['arn']})")
        print(
            "attach it to a stopped instance with: aws sagemaker update-notebook-instance "
            f"--notebook-instance-name NAME --lifecycle-config-name {result['name']}"
        )
        return 0

    if args.action == "iam-policy":
        if args.cluster_id and not args.ssm:
            raise HailEmrLabError("--cluster-id only limits the --ssm statements: add --ssm")
        policy = lifecycle.iam_policy(
            args.bucket, args.user, args.instance_name, args.kms_key_arn, ssm=args.ssm, cluster_id=args.cluster_id,
            serverless_app=args.serverless_app, execution_role=args.execution_role,
        )
        print(json.dumps(policy, indent=2))
        from .iam import lifecycle_rules_advice

        print(lifecycle_rules_advice(args.bucket, args.user), file=sys.stderr)  # stdout stays the policy JSON
        return 0

    if args.action == "emr-steps":
        if args.upload:
            if not args.bucket:
                raise HailEmrLabError("--upload needs --bucket")
            for url in lifecycle.upload_emr_scripts(args.bucket):
                print(f"uploaded {url}", file=sys.stderr)
        out = lifecycle.emr_steps(args.bucket, args.plots_dir, args.web)
        key = {"add-steps": "add_steps", "api": "api_steps"}.get(args.format, args.format)
        print(json.dumps(out if args.format == "all" else out[key], indent=2))
        return 0
    raise HailEmrLabError(f"unknown lifecycle action {args.action!r}")  # argparse prevents this
