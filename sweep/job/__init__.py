"""Code that runs on the execute node."""
