"""The SQL layer: the ksqlDB dialect over the engine (parser, analyzer, planner, executor)."""
