"""sweep: how accuracy and cost change with the amount of training data, on an HTCondor pool.

This package is also shipped to execute nodes (only ``sweep/__init__.py`` and ``sweep/job/``),
so nothing heavy may be imported here.
"""

__version__ = "0.1.0"
