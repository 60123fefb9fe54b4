"""The SageMaker Pipeline that builds a model: its definition, parameter checks and the CI runner."""
