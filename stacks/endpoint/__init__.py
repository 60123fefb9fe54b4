"""The environment's real-time endpoint: one stack whose model version is a CloudFormation parameter."""
