"""`python -m bench [--quick]`: see bench/README.md."""

import os
import sys

from bench._procs import STORES
from bench.run import main

status = main()
# The real-server figures join participants through the `livekit` real-time SDK, whose native runtime can abort
# the process while the interpreter finalizes it ("panic in a function that cannot unwind", SIGABRT) after the
# table is printed. Everything is written and every server stopped by now, so leave without finalizing.
STORES.cleanup()  # what finalizing would have removed
sys.stdout.flush()
sys.stderr.flush()
os._exit(status)
