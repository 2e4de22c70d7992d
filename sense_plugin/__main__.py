"""Entry point for ``python -m sense_plugin``."""

from sense_plugin.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
