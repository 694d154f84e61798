"""The report: how much training data is enough, and what does it cost?"""
