"""Sparkplug B against the generic MQTT JSON profile on the same map, in the same run: metrics
decoded and published per CPU-second of fieldlinkd into mosquitto (the durable store in the path,
as deployed), and bytes on the wire per metric (what the broker received from the gateway: every
PUBLISH, acknowledgement and barrier, from mosquitto's $SYS/broker/bytes/received).

The map is throughput.py's: 2 Modbus TCP connections, 24 units polled every 10 ms, 100 points each
(float32, int16, scaled uint16, uint16) from the bundled simulator, whose counter and constant
registers make report-by-exception send what changes.

Usage: python3 bench/sparkplug.py BUILD_DIR [SECONDS]
Prints one summary line per figure.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
import throughput  # noqa: E402  (the same map and measuring helpers)
from harness import free_port, wait_for  # noqa: E402

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
WORK = tempfile.mkdtemp(prefix="fl-bench-spb-")

CLOUDS = {
    "mqtt": "platform: mqtt\n    max_inflight: 200",
    "sparkplug": "platform: sparkplug\n    group_id: bench\n    edge_node_id: gw\n    max_inflight: 200",
}


def config(platform, mqtt_port, modbus_port):
    text = throughput.config(mqtt_port, modbus_port, "disk")
    text = text.replace("platform: mqtt\n    host: 127.0.0.1\n    port: %d\n    max_inflight: 200" % mqtt_port,
                        CLOUDS[platform] + "\n    host: 127.0.0.1\n    port: %d" % mqtt_port)
    return text.replace(throughput.WORK, os.path.join(WORK, platform))


def broker_bytes_received(port):
    out = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-C", "1", "-W", "5", "-t",
                          "$SYS/broker/bytes/received"], capture_output=True, text=True, timeout=10).stdout
    return int(out.split()[0])


def run(platform, mqtt_port, modbus_port):
    os.makedirs(os.path.join(WORK, platform), exist_ok=True)
    cfg = os.path.join(WORK, platform, "bench.yaml")
    with open(cfg, "w") as f:
        f.write(config(platform, mqtt_port, modbus_port))
    data_dir = os.path.join(WORK, platform, "data-disk")
    log_path = os.path.join(WORK, platform, "fieldlinkd.log")
    with open(log_path, "w") as log:
        d = subprocess.Popen([os.path.join(BUILD, "daemon", "fieldlinkd"), "--config", cfg, "--plugin-dir",
                              os.path.join(BUILD, "plugins")], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "connected to cloud" in open(log_path).read(), what="fieldlinkd to connect")
        time.sleep(3)  # warm-up
        status = os.path.join(data_dir, "status.json")
        m0 = os.stat(status).st_mtime
        wait_for(lambda: os.stat(status).st_mtime != m0, what="status.json")
        cpu0, s0, b0 = throughput.cpu_seconds(d.pid), throughput.samples_sent(data_dir), broker_bytes_received(mqtt_port)
        time.sleep(SECONDS)
        m1 = os.stat(status).st_mtime
        wait_for(lambda: os.stat(status).st_mtime != m1, what="status.json")
        cpu1, s1, b1 = throughput.cpu_seconds(d.pid), throughput.samples_sent(data_dir), broker_bytes_received(mqtt_port)
    finally:
        d.send_signal(signal.SIGTERM)
        d.wait(10)
    samples, cpu = s1 - s0, cpu1 - cpu0
    return {"mpc": samples / cpu if cpu > 0 else 0, "samples": samples, "cpu": cpu,
            "bytes": (b1 - b0) / samples if samples else 0}


def main():
    procs = []
    try:
        mqtt_port, modbus_port = free_port(), free_port()
        procs += throughput.start_broker_and_simulator(BUILD, mqtt_port, modbus_port)
        r = {p: run(p, mqtt_port, modbus_port) for p in ("mqtt", "sparkplug")}
        spb, js = r["sparkplug"], r["mqtt"]
        print("sparkplug throughput: platform sparkplug %s metrics decoded+published per CPU-second | platform mqtt "
              "(JSON) on the same map %s | ratio %.2f (%d and %d metrics in %.2f and %.2f CPU-s)"
              % (format(int(spb["mpc"]), ","), format(int(js["mpc"]), ","), spb["mpc"] / max(js["mpc"], 1),
                 spb["samples"], js["samples"], spb["cpu"], js["cpu"]))
        print("sparkplug bytes on the wire per metric (gateway to broker): sparkplug %.1f | mqtt JSON %.1f | ratio %.2f"
              % (spb["bytes"], js["bytes"], spb["bytes"] / max(js["bytes"], 1e-9)))
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(3)
                except subprocess.TimeoutExpired:
                    p.kill()
        if not os.environ.get("FIELDLINK_KEEP_BENCH_DIRS"):
            shutil.rmtree(WORK, ignore_errors=True)
            shutil.rmtree(throughput.WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
