"""What AWS does in the cloud, done on this machine for ``make demo`` and the loop's tests: a Step Functions
interpreter for the synthesized definitions, and endpoints that are real model servers behind a router."""
