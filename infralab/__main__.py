"""`python -m infralab` is the `infralab` command (services use it inside emulated hosts)."""

import sys

from infralab.cli import main

sys.exit(main())
