"""The status page: static assets shipped in the package and the summary they fetch."""
