"""wbxml."""
