// Decodes Sparkplug B payloads with Eclipse Tahu's sparkplug-payload (npm), a decoder nobody on
// the project wrote: one hex payload per input line, one JSON line out, values as text (64-bit
// integers come back as Long objects, which JSON cannot carry).
// NODE_PATH must lead to the installed package (the test command installs it).
"use strict";
const sparkplug = require("sparkplug-payload").get("spBv1.0");
// The raw protobuf as Tahu's generated code reads it: which value field a metric used.
const RawPayload = require("sparkplug-payload/lib/sparkplugPayloadProto").org.eclipse.tahu.protobuf.Payload;
const readline = require("readline");

const text = (v) => (v === null || v === undefined ? "" : typeof v === "object" ? v.toString() : String(v));
const plain = (v) => (v === null || v === undefined ? null : typeof v === "object" ? Number(v.toString()) : v);

readline.createInterface({ input: process.stdin }).on("line", (line) => {
    const bytes = Buffer.from(line.trim(), "hex");
    const p = sparkplug.decodePayload(bytes);
    const raw = RawPayload.decode(bytes);
    process.stdout.write(
        JSON.stringify({
            seq: plain(p.seq),
            timestamp: plain(p.timestamp),
            metrics: (p.metrics || []).map((m, i) => ({
                field: raw.metrics[i].value || "",
                name: m.name || "",
                alias: plain(m.alias) || 0,
                type: m.type,
                historical: !!m.isHistorical,
                null: m.value === null,  // (Tahu reads is_null as a null value)
                ts: plain(m.timestamp),
                value: text(m.value),
            })),
        }) + "\n",
    );
});
