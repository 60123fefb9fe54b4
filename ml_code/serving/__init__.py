"""The model server: SageMaker's /ping and /invocations over the trained artifact."""
