"""Messages and values per hour with report by exception against without, in the same run, on a
ramp-and-constant map (issue 9): one device on Modbus TCP (the bundled simulator) polled every
500 ms, a counter that ramps 10 steps per second (uint32) and 10 registers that hold still,
published with the generic MQTT default (one message per poll with its values) to a local broker.

  without: every point with every poll
  with:    the ramp with `deadband: 50`, the others `on_change: true` with `heartbeat: 5m`

Usage: python3 bench/deadband.py BUILD_DIR [SECONDS]
Prints one summary line per figure.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from harness import free_port, wait_for  # noqa: E402

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 30.0
WORK = tempfile.mkdtemp(prefix="fl-bench-deadband-")


def run(mqtt_port, modbus_port, exception):
    ramp = ", deadband: 50" if exception else ""
    still = ", on_change: true, heartbeat: 5m" if exception else ""
    points = "\n".join(["      - { name: ramp, area: holding, address: 0, type: uint32%s }" % ramp] +
                       ["      - { name: c%d, area: holding, address: %d%s }" % (i, 10 + i, still) for i in range(10)])
    name = "with" if exception else "without"
    cfg = os.path.join(WORK, name + ".yaml")
    with open(cfg, "w") as f:
        f.write(f"""gateway: {{ data_dir: {WORK}/data-{name}, log_level: warn }}
clouds:
  local: {{ platform: mqtt, host: 127.0.0.1, port: {mqtt_port}, topic: "bench/{name}" }}
buses:
  tcp: {{ driver: modbus-tcp, host: 127.0.0.1, port: {modbus_port} }}
devices:
  - name: d
    cloud: local
    bus: tcp
    unit: 1
    interval: 500ms
    points:
{points}
""")
    out_path = os.path.join(WORK, name + ".msgs")
    with open(out_path, "w") as out:
        sub = subprocess.Popen(["mosquitto_sub", "-p", str(mqtt_port), "-t", "bench/" + name], stdout=out)
        time.sleep(0.3)
        d = subprocess.Popen([os.path.join(BUILD, "daemon", "fieldlinkd"), "--config", cfg, "--plugin-dir",
                              os.path.join(BUILD, "plugins")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(SECONDS)
        d.terminate()
        d.wait(10)
        time.sleep(0.3)
        sub.terminate()
        sub.wait(5)
    msgs = [json.loads(line) for line in open(out_path) if line.strip()]
    values = sum(len(m["values"]) for m in msgs)
    return len(msgs) * 3600 / SECONDS, values * 3600 / SECONDS


def main():
    procs = []
    try:
        mqtt_port, modbus_port = free_port(), free_port()
        conf = os.path.join(WORK, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\n" % mqtt_port)
        procs.append(subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen([os.path.join(BUILD, "daemon", "fieldlink"), "simulate", "--tcp",
                                       "127.0.0.1:%d" % modbus_port, "--units", "1", "--tick", "100ms"],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
        time.sleep(0.5)
        m0, v0 = run(mqtt_port, modbus_port, False)
        m1, v1 = run(mqtt_port, modbus_port, True)
        print("report by exception (ramp deadband 50, 10 constants on_change + heartbeat 5m, poll 500 ms, %.0f s "
              "each): %.0f messages/h, %.0f values/h | every poll %.0f messages/h, %.0f values/h | ratio messages "
              "%.3f, values %.3f" % (SECONDS, m1, v1, m0, v0, m1 / max(m0, 1), v1 / max(v0, 1)))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(5)
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
