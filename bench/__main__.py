"""`python -m bench [--smoke] [--seconds N] [--repeats N] ...`: see bench/harness.py."""

import sys

from bench.harness import main

sys.exit(main())
