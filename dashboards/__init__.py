"""taktline dashboards: Grafana dashboards generated from the plant model (issue 7).

Built with grafana-foundation-sdk's typed builders; queries are raw InfluxQL on the InfluxDB
datasource `datasource.DATASOURCE_UID`. `build.write_dashboards(plant, out)` writes the JSON
(`taktline dashboards build`); `load.load_dashboard(text)` reads it back through the SDK's models.
"""
