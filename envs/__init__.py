"""Installed as `sweep.envs`: only the lock file requirements-job.txt is its package data (see sweep/resources.py)."""
