"""sense_plugin: a video export server speaking the VDG Sense HTTP/XML command API."""

__version__ = "0.1.0"
