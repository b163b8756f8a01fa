"""One module per ``headstart`` sub-command."""
