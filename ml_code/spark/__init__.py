"""Spark processing for data too large for one instance's memory (SageMaker's Spark container runs it)."""
