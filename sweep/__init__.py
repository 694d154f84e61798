"""sweep: how accuracy and cost change with the amount of training data, on an HTCondor pool.

This package is also shipped to execute nodes in part,
so nothing heavy may be imported here (the code tarball: sweep/__init__.py, sweep/names.py, sweep/job/).
"""

__version__ = "0.1.0"
