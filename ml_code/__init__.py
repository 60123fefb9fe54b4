"""The ML workload: one set of scripts that SageMaker jobs run in AWS and `local_run` runs here."""
