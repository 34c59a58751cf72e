"""Idle footprint: fieldlinkd with 10 devices and 100 points (10 each) on Modbus TCP (the bundled
simulator), polled every 5 s and published to a local mosquitto through the durable store.
RSS and threads after it settles, and the time from the process start to the first message a
subscriber receives. Baseline in the same run: the RSS of mosquitto_sub (a minimal libmosquitto
client doing nothing) and of `sleep` (a process doing nothing at all).

Usage: python3 bench/footprint.py BUILD_DIR [RUNS]   (first-publish time: median of RUNS starts)
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from harness import free_port, proc_status, wait_for  # noqa: E402

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
WORK = tempfile.mkdtemp(prefix="fl-footprint-")


def config(mqtt_port, modbus_port, run):
    devices = "".join(
        "  - { name: meter%d, cloud: local, bus: plc, unit: %d, interval: 5s, points: [ %s ] }\n"
        % (d, d + 1, ", ".join("{ name: p%d, area: holding, address: %d }" % (p, 10 + p) for p in range(10)))
        for d in range(10))
    return """
gateway: { log_level: info, data_dir: %s }
clouds:
  local: { platform: mqtt, host: 127.0.0.1, port: %d, topic: "fp/{device}" }
buses:
  plc: { driver: modbus-tcp, host: 127.0.0.1, port: %d }
devices:
%s""" % (os.path.join(WORK, "data-%d" % run), mqtt_port, modbus_port, devices)


def first_publish_ms(mqtt_port, modbus_port, run, keep=False):
    cfg = os.path.join(WORK, "fp-%d.yaml" % run)
    with open(cfg, "w") as f:
        f.write(config(mqtt_port, modbus_port, run))
    sub_log = os.path.join(WORK, "sub-%d.log" % run)
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(mqtt_port), "-t", "fp/#", "-F", "%U %t"],
                           stdout=open(sub_log, "w"), stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    t0 = time.time()
    d = subprocess.Popen([os.path.join(BUILD, "daemon", "fieldlinkd"), "--config", cfg, "--plugin-dir",
                          os.path.join(BUILD, "plugins")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = wait_for(lambda: open(sub_log).read().split(" ", 1)[0].strip(), timeout=10, step=0.01, what="a publish")
    ms = (float(first) - t0) * 1000
    out = None
    if keep:
        time.sleep(15)  # settle: every device polled and published a few times
        out = (proc_status(d.pid, "VmRSS:") / 1024, proc_status(d.pid, "Threads:"),
               proc_status(sub.pid, "VmRSS:") / 1024)
    d.terminate()
    d.wait(10)
    sub.terminate()
    sub.wait(10)
    return ms, out


def main():
    mqtt_port, modbus_port = free_port(), free_port()
    conf = os.path.join(WORK, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\nallow_anonymous true\nlog_type none\nuser %s\n"
                % (mqtt_port, os.environ.get("USER", "root")))
    broker = subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sim = subprocess.Popen([os.path.join(BUILD, "daemon", "fieldlink"), "simulate", "--tcp", "127.0.0.1:%d" % modbus_port,
                            "--units", ",".join(str(u) for u in range(1, 11))],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    idle = subprocess.Popen(["sleep", "60"])
    try:
        assert sim.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        times, footprint = [], None
        for run in range(RUNS):
            ms, out = first_publish_ms(mqtt_port, modbus_port, run, keep=(run == 0))
            times.append(ms)
            footprint = footprint or out
        rss, threads, sub_rss = footprint
        print("footprint: 10 devices, 100 points on Modbus TCP: rss fieldlinkd %.1f MB (target <= 8 MB), %d threads | "
              "baseline rss: mosquitto_sub %.1f MB, sleep %.1f MB; first publish %.0f ms after start (median of %d, "
              "max %.0f; target <= 200 ms)"
              % (rss, threads, sub_rss, proc_status(idle.pid, "VmRSS:") / 1024, statistics.median(times), RUNS,
                 max(times)), flush=True)
    finally:
        for p in (idle, sim, broker):
            p.terminate()
            p.wait(10)
        if not os.environ.get("FIELDLINK_KEEP_BENCH_DIRS"):
            shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
