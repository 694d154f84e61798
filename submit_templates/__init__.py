"""Installed as `sweep.submit_templates`: the Jinja templates are its package data (see sweep/resources.py)."""
