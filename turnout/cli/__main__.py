"""`python -m turnout.cli`: what the `turnout` console script runs."""

import sys

from turnout.cli import main

sys.exit(main())
