"""``python -m hail_emr_lab`` is the same as the ``hail-emr-lab`` command."""

import sys

from .cli import main

sys.exit(main())
