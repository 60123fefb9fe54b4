"""The compliance gate: cdk-nag packs on every stage, and the one table of acknowledged findings."""
