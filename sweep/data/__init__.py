"""Datasets in the NIH ChestX-ray14 layout: synthesize, validate, shard into TFRecords, plan job inputs."""
