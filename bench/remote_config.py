"""A configuration pushed from the platform (issue 24, item 1), against the same change made the
usual way: a gateway with DEVICES devices, each with its own MQTT session, polled every 200 ms
over Modbus TCP (the bundled simulator), publishing to mosquitto on loopback. Each round adds one
device to the main file and measures the time until the new device's first sample reaches a
subscriber:

- pushed: the whole file published on the gateway's config_topic (generic MQTT); fieldlinkd checks
  it as --check does, writes it atomically, reloads, verifies and reports;
- SIGHUP (the baseline, in the same run, rounds alternating): the same kind of file written over
  the configuration and the daemon sent SIGHUP.

Usage: python3 bench/remote_config.py BUILD_DIR [DEVICES] [ROUNDS]   (default 100, 10)
Prints one summary line per figure.
"""
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from harness import free_port, raise_nofile, wait_for  # noqa: E402

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
DEVICES = int(sys.argv[2]) if len(sys.argv) > 2 else 100
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 10
WORK = tempfile.mkdtemp(prefix="fl-bench-remote-config-")
TOPIC = "bench/gw/config"


def config(mqtt_port, modbus_port, extra):
    text = f"""gateway: {{ data_dir: {WORK}/data, log_level: warn }}
clouds:
  local: {{ platform: mqtt, host: 127.0.0.1, port: {mqtt_port}, topic: "bench/{{device}}", config_topic: {TOPIC},
           remote_config: true }}
buses:
  a: {{ driver: modbus-tcp, host: 127.0.0.1, port: {modbus_port}, timeout: 500ms }}
devices:
"""
    for i in range(DEVICES):
        text += (f"  - {{ name: d{i}, cloud: local, bus: a, unit: {i % 200 + 1}, interval: 200ms, "
                 "points: [{ name: v, area: holding, address: 0 }] }\n")
    for name in extra:
        text += (f"  - {{ name: {name}, cloud: local, bus: a, unit: 1, interval: 200ms, "
                 "points: [{ name: v, area: holding, address: 0 }] }\n")
    return text


class Arrivals:
    """mosquitto_sub on bench/+ : the first arrival time of each topic, as lines come."""

    def __init__(self, port):
        self.first = {}
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", "bench/+", "-F",
                                      "%t"], stdout=subprocess.PIPE, text=True, bufsize=1)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            t = time.monotonic()
            topic = line.strip()
            with self.cond:
                if topic not in self.first:
                    self.first[topic] = t
                    self.cond.notify_all()

    def wait(self, topic, timeout=30):
        with self.cond:
            if not self.cond.wait_for(lambda: topic in self.first, timeout):
                raise AssertionError("no sample of " + topic)
            return self.first[topic]


def main():
    mqtt_port, modbus_port = free_port(), free_port()
    conf = os.path.join(WORK, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n" % mqtt_port)
    procs = [subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        sim = subprocess.Popen([os.path.join(BUILD, "daemon", "fieldlink"), "simulate", "--tcp",
                                "127.0.0.1:%d" % modbus_port, "--units", ",".join(str(u) for u in range(1, 201)),
                                "--tick", "100ms"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               bufsize=1)
        procs.append(sim)
        assert sim.stdout.readline().strip() == "ready"
        arrivals = Arrivals(mqtt_port)
        procs.append(arrivals.proc)
        time.sleep(0.3)
        config_file = os.path.join(WORK, "config.yaml")
        extra = []
        with open(config_file, "w") as f:
            f.write(config(mqtt_port, modbus_port, extra))
        daemon = subprocess.Popen([os.path.join(BUILD, "daemon", "fieldlinkd"), "--config", config_file,
                                   "--plugin-dir", os.path.join(BUILD, "plugins")],
                                  stdout=subprocess.DEVNULL, stderr=open(os.path.join(WORK, "fieldlinkd.log"), "w"),
                                  preexec_fn=raise_nofile)
        procs.append(daemon)
        arrivals.wait("bench/d%d" % (DEVICES - 1))
        time.sleep(1)
        pushed, sighup = [], []
        for r in range(2 * ROUNDS):
            name = "new%d" % r
            extra.append(name)
            text = config(mqtt_port, modbus_port, extra)
            t0 = time.monotonic()
            if r % 2 == 0:
                subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(mqtt_port), "-q", "1", "-t", TOPIC,
                                "-s"], input=text.encode(), check=True)
                # (mosquitto_pub's own start and connect are inside the figure: a platform's cost too)
                pushed.append(arrivals.wait("bench/" + name) - t0)
            else:
                with open(config_file + ".tmp", "w") as f:
                    f.write(text)
                os.rename(config_file + ".tmp", config_file)
                daemon.send_signal(signal.SIGHUP)
                sighup.append(arrivals.wait("bench/" + name) - t0)
            time.sleep(1.5)  # (the pushed one is verified and reported before the next)
        with open(os.path.join(WORK, "data", "config-history", "state.json")) as f:
            state = f.read()
        assert '"applied"' in state, state
        p50 = statistics.median(pushed) * 1000
        b50 = statistics.median(sighup) * 1000
        print("remote config: push -> first sample of the added device, %d devices, %d rounds each: p50 %.0f ms, "
              "max %.0f ms | SIGHUP of the same file (baseline, same run): p50 %.0f ms, max %.0f ms | ratio %.2f"
              % (DEVICES, ROUNDS, p50, max(pushed) * 1000, b50, max(sighup) * 1000, p50 / b50))
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
