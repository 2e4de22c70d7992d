"""Entry point for ``python -m sense_plugin``."""

from sense_plugin.cli import main

raise SystemExit(main())
