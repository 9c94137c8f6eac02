"""Stand-in for MoGe's package (see ../README.md)."""
