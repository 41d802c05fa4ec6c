"""The central server: line state from the live bus, line screens, HTTP API."""
