"""The Kafka shell around the pure core: faust app, topics, tables, timers, CLI pieces."""
