"""Command-line client for people and scripts: talks to a server over the HTTP API only."""
