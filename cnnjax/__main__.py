"""`python -m cnnjax ...` is the `cnnjax` console script."""

from cnnjax.cli import main

raise SystemExit(main())
