"""`python -m torchlogit ...` is the `torchlogit` command."""

import sys

from .cli import main

sys.exit(main())
