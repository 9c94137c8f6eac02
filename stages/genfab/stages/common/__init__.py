"""Libraries the stage packages share (pipeline packages import these, not each other)."""
