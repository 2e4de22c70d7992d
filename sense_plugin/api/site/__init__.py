"""site: the site's HTTP half (server-to-server calls, relayed downloads, site lists)."""
