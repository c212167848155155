"""`python -m taskprune.cli` runs the `taskprune` command."""

from . import main

raise SystemExit(main())
