"""Custom resource that empties a SageMaker domain so that CloudFormation can delete it."""
