"""The `genfab` command line."""
