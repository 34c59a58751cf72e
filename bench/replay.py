"""Backlog replay: 1,000,000 samples queued in the outbox (prefilled with bench/store_bench), then
fieldlinkd starts with the broker up and replays them into a local mosquitto (generic MQTT
profile, QoS 1, every message PUBACKed before its records are deleted). Prints samples/s.

Usage: python3 bench/replay.py BUILD_DIR [SAMPLES]
"""
import datetime
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from harness import free_port, wait_for  # noqa: E402

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
SAMPLES = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000


def stamp(line):
    return datetime.datetime.strptime(line[:23], "%Y-%m-%dT%H:%M:%S.%f").timestamp()


def main():
    work = tempfile.mkdtemp(prefix="fl-replay-")
    port = free_port()
    points = ", ".join("{ name: p%d, area: holding, address: %d }" % (i, i) for i in range(10))
    cfg = os.path.join(work, "replay.yaml")
    with open(cfg, "w") as f:
        f.write("""gateway: { data_dir: %s/data, store_max_bytes: 4GB }
clouds:
  local: { platform: mqtt, host: 127.0.0.1, port: %d, max_inflight: 500 }
buses:
  s: { driver: sim }
devices:
  - { name: d, cloud: local, bus: s, interval: 24h, points: [ %s ] }
""" % (work, port, points))
    out = subprocess.run([os.path.join(BUILD, "bench", "store_bench"), "prefill", cfg, str(SAMPLES)], check=True,
                         capture_output=True, text=True).stdout
    conf = os.path.join(work, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\nallow_anonymous true\nlog_type none\nmax_queued_messages 0\nuser %s\n"
                % (port, os.environ.get("USER", "root")))
    broker = subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        log_path = os.path.join(work, "fieldlinkd.log")
        with open(log_path, "w") as log:
            d = subprocess.Popen([os.path.join(BUILD, "daemon", "fieldlinkd"), "--config", cfg, "--plugin-dir",
                                  os.path.join(BUILD, "plugins")], stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: "drained" in open(log_path).read(), timeout=600, step=0.2, what="the backlog to drain")
        d.send_signal(signal.SIGTERM)
        d.wait(30)
        text = open(log_path).read()
        start = stamp(re.search(r"^.*fieldlinkd running.*$", text, re.M).group(0))
        end = stamp(re.search(r"^.*drained.*$", text, re.M).group(0))
        print("store replay: %s samples/s (%d samples queued before start, replayed in %.1f s into mosquitto at QoS 1; "
              "target >= 50,000)" % (format(int(SAMPLES / (end - start)), ","), SAMPLES, end - start))
    finally:
        broker.terminate()
        broker.wait(10)
        if not os.environ.get("FIELDLINK_KEEP_BENCH_DIRS"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
