"""The training job: runs on the execute node from the packed environment.

Imports only the standard library, numpy, TensorFlow/Keras, scikit-learn, Pillow, sweep.names and
sweep.job.*: this folder (with sweep/__init__.py and sweep/names.py) is all that is shipped.
"""
