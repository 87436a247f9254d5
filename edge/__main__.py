"""`python -m edge` runs the moodbox command line."""

from __future__ import annotations

from edge.cli import main

raise SystemExit(main())
