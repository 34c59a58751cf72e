"""What a reload disturbs (issue 10, item 6): N devices, each with its own MQTT session, polled
every 500 ms over Modbus TCP from two bundled simulators (two buses), published to mosquitto on
loopback. In the same run, one device's interval is changed and the file reloaded (SIGHUP), then
the same again with a change in the `gateway` section, which restarts everything (what every
reload did before: the baseline).

Per reload: MQTT connections made (broker log), Modbus TCP links opened (the simulators' own
count), time from SIGHUP until every session is connected again (the daemon's log), and the
largest gap between two samples of the N-1 devices that did not change, around the reload.

Usage: python3 bench/reload.py BUILD_DIR [DEVICES]   (default 200)
Prints one summary line per figure.
"""
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from harness import free_port, raise_nofile, wait_for  # noqa: E402

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
DEVICES = int(sys.argv[2]) if len(sys.argv) > 2 else 200
WORK = tempfile.mkdtemp(prefix="fl-bench-reload-")


class Sim:
    def __init__(self, port, units):
        self.proc = subprocess.Popen([os.path.join(BUILD, "daemon", "fieldlink"), "simulate", "--tcp",
                                      "127.0.0.1:%d" % port, "--units", ",".join(map(str, units)), "--tick", "100ms"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        assert self.proc.stdout.readline().strip() == "ready"

    def links(self):
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline().split()[3])


def config(mqtt_port, ports, changed_interval, dns_timeout):
    per_bus = DEVICES // 2
    text = f"""gateway: {{ data_dir: {WORK}/data, dns_timeout: {dns_timeout} }}
clouds:
  local: {{ platform: mqtt, host: 127.0.0.1, port: {mqtt_port}, topic: "bench/{{device}}" }}
buses:
  a: {{ driver: modbus-tcp, host: 127.0.0.1, port: {ports[0]}, timeout: 500ms }}
  b: {{ driver: modbus-tcp, host: 127.0.0.1, port: {ports[1]}, timeout: 500ms }}
devices:
"""
    for i in range(DEVICES):
        bus, unit = ("a", i + 1) if i < per_bus else ("b", i - per_bus + 1)
        interval = changed_interval if i == 0 else "500ms"
        text += (f"  - {{ name: d{i}, cloud: local, bus: {bus}, unit: {unit}, interval: {interval}, "
                 "points: [{ name: v, area: holding, address: 0 }] }\n")
    return text


def samples(path):
    out = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2:
                out.setdefault(parts[1], []).append(float(parts[0]))
    return out


def largest_gap(times, start, end):
    inside = [t for t in times if start <= t <= end]
    before = [t for t in times if t < start]
    if before:
        inside.insert(0, before[-1])
    if len(inside) < 2:
        return end - start
    return max(b - a for a, b in zip(inside, inside[1:]))


def main():
    procs = []
    try:
        mqtt_port, ports = free_port(), (free_port(), free_port())
        broker_log = os.path.join(WORK, "mosquitto.log")
        conf = os.path.join(WORK, "mosquitto.conf")
        with open(conf, "w") as f:
            # As root, mosquitto would drop to its own user and lose access to the scratch dir.
            f.write("listener %d 127.0.0.1\nallow_anonymous true\nlog_type all\nlog_dest file %s\n"
                    "max_connections -1\nuser %s\n" % (mqtt_port, broker_log, pwd.getpwuid(os.getuid()).pw_name))
        procs.append(subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, preexec_fn=raise_nofile))
        sims = [Sim(p, range(1, DEVICES // 2 + 1)) for p in ports]
        procs += [s.proc for s in sims]
        time.sleep(0.5)
        sub_log = os.path.join(WORK, "sub.log")
        procs.append(subprocess.Popen(["mosquitto_sub", "-p", str(mqtt_port), "-t", "bench/+", "-F", "%U %t"],
                                      stdout=open(sub_log, "w")))
        time.sleep(0.3)
        cfg = os.path.join(WORK, "config.yaml")
        with open(cfg, "w") as f:
            f.write(config(mqtt_port, ports, "500ms", "5s"))
        log_path = os.path.join(WORK, "fieldlinkd.log")
        d = subprocess.Popen([os.path.join(BUILD, "daemon", "fieldlinkd"), "--config", cfg, "--plugin-dir",
                              os.path.join(BUILD, "plugins")], stdout=subprocess.DEVNULL,
                             stderr=open(log_path, "w"), preexec_fn=raise_nofile)
        procs.append(d)
        log = lambda: open(log_path).read()
        connected = lambda: len(re.findall(r"all %d sessions connected" % DEVICES, log()))
        wait_for(lambda: connected() >= 1, timeout=60, what="every session connected")
        time.sleep(3)

        results = {}
        for name, interval, dns in (("one device changed", "1s", "5s"), ("gateway section changed", "1s", "6s")):
            with open(cfg, "w") as f:
                f.write(config(mqtt_port, ports, interval, dns))
            conns = open(broker_log).read().count("New client connected")
            links = sum(s.links() for s in sims)
            seen = connected()
            t0 = time.time()
            d.send_signal(signal.SIGHUP)
            wait_for(lambda: connected() > seen, timeout=60, what="every session connected after the reload")
            took = time.time() - t0
            time.sleep(4)
            gaps = samples(sub_log)
            others = [largest_gap(gaps.get("bench/d%d" % i, []), t0 - 1, t0 + 3) for i in range(1, DEVICES)]
            results[name] = (open(broker_log).read().count("New client connected") - conns,
                             sum(s.links() for s in sims) - links, took, max(others))
        d.terminate()
        d.wait(20)
        g, b = results["one device changed"], results["gateway section changed"]
        print("reload (%d devices, own session each, 2 Modbus TCP buses, 500 ms polls): one device changed: "
              "%d MQTT connection(s), %d Modbus link(s) opened, all sessions up again after %.0f ms, largest "
              "sample gap of the %d unchanged devices %.2f s | full restart (baseline, gateway section "
              "changed): %d connection(s), %d link(s), %.0f ms, gap %.2f s"
              % (DEVICES, g[0], g[1], g[2] * 1000, DEVICES - 1, g[3], b[0], b[1], b[2] * 1000, b[3]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
