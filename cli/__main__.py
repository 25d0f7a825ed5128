"""`python -m cli`: see `cli.main`."""

import sys

from cli.main import main

sys.exit(main())
