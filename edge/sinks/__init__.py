"""Where the outbox delivers: InfluxDB and the live bus, each with its own cursor and task."""
