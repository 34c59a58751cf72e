#!/usr/bin/env bash
# The demo command: installs what is needed, builds, starts a local mosquitto broker and the
# bundled Modbus simulator on free loopback ports, runs fieldlinkd on config/demo.yaml and shows
# the datastreams arriving on the broker. Stops after DEMO_SECONDS (default 20) or on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" >/dev/null

RUN=demo-run
mkdir -p "$RUN"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export FIELDLINK_DEMO_MQTT_PORT=$(free_port)
export FIELDLINK_DEMO_MODBUS_PORT=$(free_port)
export FIELDLINK_DEMO_HTTP_PORT=$(free_port)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

printf 'listener %s 127.0.0.1\nallow_anonymous true\nuser %s\n' "$FIELDLINK_DEMO_MQTT_PORT" "$(id -un)" > "$RUN/mosquitto.conf"
mosquitto -c "$RUN/mosquitto.conf" > "$RUN/mosquitto.log" 2>&1 & pids+=($!)
tail -f /dev/null | ./build/daemon/fieldlink simulate --tcp "127.0.0.1:$FIELDLINK_DEMO_MODBUS_PORT" --config config/demo.yaml > "$RUN/simulator.log" 2>&1 & pids+=($!)
sleep 0.5

echo "== broker on 127.0.0.1:$FIELDLINK_DEMO_MQTT_PORT, Modbus simulator on 127.0.0.1:$FIELDLINK_DEMO_MODBUS_PORT"
./build/daemon/fieldlinkd --check --plan --config config/demo.yaml
echo "== datastreams arriving on the broker (topic payload):"
mosquitto_sub -h 127.0.0.1 -p "$FIELDLINK_DEMO_MQTT_PORT" -t 'fieldlink/#' -v & pids+=($!)
./build/daemon/fieldlinkd --config config/demo.yaml 2> "$RUN/fieldlinkd.log" & daemon=$!; pids+=($daemon)
sleep 5
echo "== status page: http://127.0.0.1:$FIELDLINK_DEMO_HTTP_PORT/ (health: $(curl -s "http://127.0.0.1:$FIELDLINK_DEMO_HTTP_PORT/healthz"))"
./build/daemon/fieldlink status --config config/demo.yaml --values || true
echo "== the cloud writes: relay on, setpoint 21.5 (replies on fieldlink/meter/set/reply)"
mosquitto_pub -h 127.0.0.1 -p "$FIELDLINK_DEMO_MQTT_PORT" -t fieldlink/meter/set -m on
mosquitto_pub -h 127.0.0.1 -p "$FIELDLINK_DEMO_MQTT_PORT" -t fieldlink/meter/set -m '{"setpoint": 21.5}'
mosquitto_pub -h 127.0.0.1 -p "$FIELDLINK_DEMO_MQTT_PORT" -t fieldlink/meter/set -m '{"setpoint": 99}'
sleep "${DEMO_SECONDS:-15}"
kill -TERM "$daemon"; wait "$daemon" || true
echo "== fieldlinkd log ($RUN/fieldlinkd.log):"
cat "$RUN/fieldlinkd.log"
