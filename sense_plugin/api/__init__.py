"""Api layer of sense_plugin."""
