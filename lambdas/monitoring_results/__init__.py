"""Publishes a finished monitoring run's verdict (both engines) and values (platform engine) as CloudWatch metrics."""
