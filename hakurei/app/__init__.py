"""The desktop launcher (issue 7)."""
