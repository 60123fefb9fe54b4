"""The auditor's report: `make audit` (python -m tools.audit)."""
