"""``make demo``'s loop: the platform's whole cycle on this machine (``python -m tools.demo``)."""
