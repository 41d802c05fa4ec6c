// Node-RED settings for taktline's peer benchmark (bench/peer_nodered.py). Headless: no editor,
// no admin API, no HTTP nodes, so nothing listens (were the editor enabled, it would listen on
// 127.0.0.1 only). The flow file comes from the environment, and so do the flow's broker port,
// InfluxDB port and database (${TAKT_...} in flow.json). Started as
//   node node_modules/node-red/red.js --settings settings.js --userDir TMP
// Log lines go to stderr; stdout carries JSON lines for the benchmark: {"event": "connected"}
// once the flow's broker connection is up, {"event": "log", ...} counting the errors and
// warnings nodes logged (a failed InfluxDB write is one error, and its points are lost).

function benchLogger() {
    const levels = { 10: "fatal", 20: "error", 30: "warn", 40: "info", 50: "debug", 60: "trace" };
    const counts = { event: "log", node_errors: 0, node_warnings: 0 };
    const emit = (event) => process.stdout.write(JSON.stringify(event) + "\n");
    return function (msg) {
        const body = msg.msg;
        const text = body instanceof Error ? body.stack : typeof body === "object" ? JSON.stringify(body) : String(body);
        const source = msg.type ? `[${msg.type}:${msg.name || msg.id}] ` : "";
        process.stderr.write(`${new Date().toISOString()} [${levels[msg.level] || msg.level}] ${source}${text}\n`);
        if (msg.type && msg.level <= 30) {
            counts[msg.level <= 20 ? "node_errors" : "node_warnings"] += 1;
            emit(counts);
        }
        if (msg.type === "mqtt-broker" && text.startsWith("Connected to broker")) {
            emit({ event: "connected" });
        }
    };
}

module.exports = {
    flowFile: process.env.TAKT_FLOW_FILE,
    credentialSecret: false,
    lang: "en-US",
    uiHost: "127.0.0.1",
    httpAdminRoot: false,
    httpNodeRoot: false,
    diagnostics: { enabled: false, ui: false },
    runtimeState: { enabled: false, ui: false },
    telemetry: { enabled: false, updateNotification: false },
    logging: { bench: { level: "info", metrics: false, audit: false, handler: benchLogger } },
    contextStorage: { default: { module: "memory" } },
    functionExternalModules: false,
    externalModules: { autoInstall: false, palette: { allowInstall: false } },
};
