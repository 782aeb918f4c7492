"""`python -m bench`: run every benchmark and regenerate docs/benchmarks.md (see bench/report.py)."""

import sys

from bench.report import main

sys.exit(main())
