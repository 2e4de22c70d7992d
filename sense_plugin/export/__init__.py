"""Export layer of sense_plugin."""
