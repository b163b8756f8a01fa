"""headstart's command line."""
