"""Stand-in for VGGT's package (see ../README.md)."""
