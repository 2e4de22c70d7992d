"""The handlers of the ``sense-plugin`` subcommands (``cli`` parses argv and calls them)."""
