"""DEX's reference data pipeline: hourly weather observations through raw, bronze, silver and
gold, with quality gates, reconciliation, lineage and metrics. No Pulumi imports here."""
