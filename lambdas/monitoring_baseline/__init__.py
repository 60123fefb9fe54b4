"""Copies a deployed version's baselines into the monitoring bucket and writes its model-quality constraints."""
