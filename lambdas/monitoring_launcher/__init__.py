"""Starts the platform engine's monitoring job for the window a schedule fired for (EventBridge Scheduler)."""
