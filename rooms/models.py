"""Models of the app; see the issue that builds it."""
