"""`python -m receiver` runs the cellect-monitor CLI."""

from receiver.cli import main

raise SystemExit(main())
