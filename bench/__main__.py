"""`python -m bench [NAME ...]`; see bench/README.md."""

import sys

from bench.harness import main

sys.exit(main())
