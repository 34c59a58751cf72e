"""Publish windows (issue 23): messages per second and fieldlinkd CPU for one device polled every
100 ms, sent with every poll against sent once a second with each point's aggregate, in the same
run. One device on Modbus TCP (the bundled simulator, its counter ramping every 10 ms), 10
points: the ramp as min, max, mean and count, 6 registers that hold still (last), published with
the generic MQTT default to a local broker. OneNET allows a device 1 message per second.

Usage: python3 bench/publish_window.py BUILD_DIR [SECONDS]
Prints one summary line.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from harness import free_port  # noqa: E402

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 20.0
WORK = tempfile.mkdtemp(prefix="fl-bench-window-")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(mqtt_port, modbus_port, window):
    name = "window" if window else "every"
    agg = ["min", "max", "mean", "count"]
    points = "\n".join(["      - { name: ramp_%s, area: holding, address: 0, type: uint32%s }" %
                        (a, ", aggregate: " + a if window else "") for a in agg] +
                       ["      - { name: c%d, area: holding, address: %d }" % (i, 10 + i) for i in range(6)])
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
    interval: 100ms
{"    publish: 1s" if window else ""}
    points:
{points}
""")
    out_path = os.path.join(WORK, name + ".msgs")
    with open(out_path, "w") as out:
        sub = subprocess.Popen(["mosquitto_sub", "-p", str(mqtt_port), "-t", "bench/" + name], stdout=out)
        time.sleep(0.3)
        d = subprocess.Popen([os.path.join(BUILD, "daemon", "fieldlinkd"), "--config", cfg, "--plugin-dir",
                              os.path.join(BUILD, "plugins")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2)  # started and connected
        c0, t0 = cpu_seconds(d.pid), time.monotonic()
        time.sleep(SECONDS)
        cpu = (cpu_seconds(d.pid) - c0) / (time.monotonic() - t0)
        d.terminate()
        d.wait(10)
        time.sleep(0.3)
        sub.terminate()
        sub.wait(5)
    msgs = [json.loads(line) for line in open(out_path) if line.strip()]
    return len(msgs) / (SECONDS + 2), cpu * 1000


def main():
    procs = []
    try:
        mqtt_port, modbus_port = free_port(), free_port()
        conf = os.path.join(WORK, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\n" % mqtt_port)
        procs.append(subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen([os.path.join(BUILD, "daemon", "fieldlink"), "simulate", "--tcp",
                                       "127.0.0.1:%d" % modbus_port, "--units", "1", "--tick", "10ms"],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
        time.sleep(0.5)
        m0, c0 = run(mqtt_port, modbus_port, False)
        m1, c1 = run(mqtt_port, modbus_port, True)
        print("publish window (poll 100 ms, publish: 1s, 10 points, %.0f s each): %.2f messages/s (OneNET allows 1), "
              "fieldlinkd %.1f CPU-ms/s | every poll %.2f messages/s, %.1f CPU-ms/s | ratio messages %.3f, CPU %.2f"
              % (SECONDS, m1, c1, m0, c0, m1 / max(m0, 1e-9), c1 / max(c0, 1e-9)))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(5)
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
