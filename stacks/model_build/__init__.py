"""Model build: a push runs CI, which upserts and runs the SageMaker Pipeline that registers a model."""
