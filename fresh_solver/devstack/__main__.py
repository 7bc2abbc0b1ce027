"""``python -m fresh_solver.devstack``: the stacks' command line."""

import sys

from fresh_solver.devstack.cli import main

sys.exit(main())
