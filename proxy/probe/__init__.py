"""`candor probe`: measure how much a model censors, on what, in which language."""
