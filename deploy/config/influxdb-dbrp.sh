#!/bin/bash
# InfluxDB 2.x: map the InfluxQL database/retention policy `$TAKTLINE_INFLUX_DB/autogen` onto the
# edges' bucket, so /query (InfluxQL: Grafana's datasource and the taktline dashboards) answers.
# The influxdb:2 image runs it once, after its first setup (/docker-entrypoint-initdb.d), with
# the influx CLI already logged in; for an existing InfluxDB run the same command by hand
# (deploy/grafana/README.md).
set -euo pipefail
influx v1 dbrp create \
  --org "${DOCKER_INFLUXDB_INIT_ORG}" \
  --bucket-id "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" \
  --db "${TAKTLINE_INFLUX_DB}" \
  --rp autogen \
  --default
