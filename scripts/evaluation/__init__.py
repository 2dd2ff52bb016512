"""The paper metrics and the tables they are written to."""
