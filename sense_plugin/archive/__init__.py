"""Archive layer of sense_plugin."""
