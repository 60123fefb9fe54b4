"""Retrains a model when its drift or quality alarm fires: at most once per cooldown, with its reasons recorded."""
