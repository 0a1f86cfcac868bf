"""`python -m bench [--quick]`: see bench/README.md."""

from bench.run import main

raise SystemExit(main())
