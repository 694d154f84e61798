"""The report: how much training data is enough, and what does it cost?

Entry point: ``sweep.analysis.report.build_report(results, sweep_info, out_dir, target_auc=0.75)``.
The results table's columns and item states are in ``sweep.results_schema``, below both this package and
``sweep collect``. Nothing is imported here, so that importing the package stays free of matplotlib and SciPy.
"""
