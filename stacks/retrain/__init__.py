"""The retrain function, its table and topic, in the environment whose model build it restarts."""
