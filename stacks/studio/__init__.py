"""The SageMaker domain (Studio) for data scientists: VPC-only, encrypted, persona roles, idle shutdown."""
