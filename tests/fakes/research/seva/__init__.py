"""Stand-in for SEVA's package (see ../README.md)."""
