"""Grafana over its HTTP API: the client, `taktline grafana push`, milestone annotations."""
