"""`python -m findings`: see `findings.cli`."""

import sys

from findings.cli import main

sys.exit(main())
