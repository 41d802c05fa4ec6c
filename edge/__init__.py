"""The edge agent: counter semantics, durable outbox, sinks to InfluxDB and the live bus."""
