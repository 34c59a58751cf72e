"""SD-card wear: bytes fieldlinkd causes to be written to storage per sample (/proc/PID/io
write_bytes: every page it dirties on a disk-backed file system, the outbox, its WAL and the
status files alike), at 10 devices x 20 points polled every second over Modbus TCP with the broker
up, against the MQTT payload bytes per sample. Variants, each measured in the same run:

  today        the durable outbox, status files in data_dir (the default)
  status-tmpfs the durable outbox, gateway.status_dir on a tmpfs (/dev/shm)
  memory       store: memory (nothing durable: the floor of what the daemon writes besides)

data_dir is on the disk under /var/tmp (a tmpfs would not count). Usage:
  python3 bench/wear.py BUILD_DIR [SECONDS]
Prints one summary line per figure.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from harness import free_port, wait_for  # noqa: E402

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
DEVICES, POINTS = 10, 20
WARMUP = 10.0


def config(work, status_dir, store, mqtt, modbus):
    points = "\n".join("      - { name: p%d, area: holding, address: %d }" % (i, 10 + i) for i in range(POINTS))
    devices = "".join("""
  - name: dev%d
    cloud: local
    bus: plc
    unit: %d
    interval: 1s
    points:
%s""" % (d, d + 1, points) for d in range(DEVICES))
    status = "  status_dir: %s\n" % status_dir if status_dir else ""
    return """gateway:
  data_dir: %s/data
%s  store: %s
clouds:
  local: { platform: mqtt, host: 127.0.0.1, port: %d, topic: "fl/{device}" }
buses:
  plc: { driver: modbus-tcp, host: 127.0.0.1, port: %d, timeout: 1s }
devices:%s
""" % (work, status, store, mqtt, modbus, devices)


def write_bytes(pid):
    with open("/proc/%d/io" % pid) as f:
        return int(re.search(r"^write_bytes: (\d+)", f.read(), re.M).group(1))


def measure(name, status_dir, store, mqtt, modbus):
    work = tempfile.mkdtemp(prefix="fl-wear-", dir="/var/tmp")
    cfg = os.path.join(work, "fieldlink.yaml")
    with open(cfg, "w") as f:
        f.write(config(work, status_dir, store, mqtt, modbus))
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(mqtt), "-t", "fl/#", "-F", "%l"],
                           stdout=subprocess.PIPE, text=True)
    log = open(os.path.join(work, "fieldlinkd.log"), "w")
    d = subprocess.Popen([os.path.join(BUILD, "daemon", "fieldlinkd"), "--config", cfg, "--plugin-dir",
                          os.path.join(BUILD, "plugins")], stdout=log, stderr=subprocess.STDOUT)
    time.sleep(WARMUP)
    w0 = write_bytes(d.pid)
    time.sleep(SECONDS)
    w1 = write_bytes(d.pid)
    d.terminate()
    d.wait(10)
    sub.terminate()
    lengths = [int(x) for x in sub.communicate()[0].split() if x.isdigit()]
    text = open(os.path.join(work, "fieldlinkd.log")).read()
    m = re.search(r"(\d+) samples sent", text)
    total_samples = int(m.group(1)) if m else 0
    payload = sum(lengths) / total_samples if total_samples else 0.0
    # samples in the window: the rate times the window (polled every second, every device answers)
    window_samples = DEVICES * POINTS * SECONDS
    per_sample = (w1 - w0) / window_samples
    shutil.rmtree(work, ignore_errors=True)
    return per_sample, payload, (w1 - w0) / SECONDS


def main():
    mqtt, modbus = free_port(), free_port()
    work = tempfile.mkdtemp(prefix="fl-wear-")
    broker = subprocess.Popen(["mosquitto", "-p", str(mqtt)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sim = subprocess.Popen([os.path.join(BUILD, "daemon", "fieldlink"), "simulate", "--tcp", "127.0.0.1:%d" % modbus,
                            "--units", ",".join(str(u + 1) for u in range(DEVICES)), "--tick", "100ms"],
                           stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        shm = tempfile.mkdtemp(prefix="fl-wear-status-", dir="/dev/shm")
        results = {}
        for name, status_dir, store in (("today", None, "disk"), ("status-tmpfs", shm, "disk"),
                                        ("memory", shm, "memory")):
            results[name] = measure(name, status_dir, store, mqtt, modbus)
        shutil.rmtree(shm, ignore_errors=True)
        base = results["today"][0]
        for name, (per_sample, payload, rate) in results.items():
            print("wear: %-13s %7.1f bytes written per sample (%.0f B/s), payload %.1f B/sample: %.1fx the payload, "
                  "%.2fx today's outbox" % (name, per_sample, rate, payload, per_sample / payload if payload else 0,
                                            per_sample / base if base else 0))
    finally:
        broker.terminate()
        sim.terminate()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
