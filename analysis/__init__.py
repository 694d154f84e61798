"""The report: how much training data is enough, and what does it cost?

Entry point: ``analysis.report.build_report(results, sweep_info, out_dir, target_auc=0.75)``.
The results table's column names are in ``analysis.columns``, which ``sweep collect`` imports.
Nothing is imported here, so that importing ``analysis.columns`` stays free of matplotlib and SciPy.
"""
