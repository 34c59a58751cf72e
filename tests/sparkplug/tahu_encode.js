// Encodes Sparkplug B payloads with Eclipse Tahu's sparkplug-payload (npm), as a host
// application would: one JSON payload per input line ({"timestamp":..,"metrics":[{"name"|"alias",
// "type","value"}]}), one hex line out. The tests send these as NCMD and DCMD.
// NODE_PATH must lead to the installed package (the test command installs it).
"use strict";
const sparkplug = require("sparkplug-payload").get("spBv1.0");
const readline = require("readline");

readline.createInterface({ input: process.stdin }).on("line", (line) => {
    const bytes = sparkplug.encodePayload(JSON.parse(line));
    process.stdout.write(Buffer.from(bytes).toString("hex") + "\n");
});
