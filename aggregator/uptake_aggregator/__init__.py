"""uptake_aggregator: the local daemon, its SQLite storage and the metrics engine."""

__all__: list[str] = []
