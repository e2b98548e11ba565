"""`python -m web serve ...` is `concert-queue serve ...`."""

import sys

from web.cli import main

sys.exit(main())
