"""`python -m taskprune` runs the `taskprune` command."""

from .cli import main

raise SystemExit(main())
