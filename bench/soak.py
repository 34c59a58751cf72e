"""A soak: hours of a site compressed into one run (not in CI; run by hand, 30-60 minutes).

50 devices: 40 over Modbus TCP (two bundled simulators, 20 units each) and 10 over Modbus RTU
(two simulators on socat pty pairs, 5 units each), polled every second, published to mosquitto
over the generic MQTT platform with the durable outbox in the path. Meanwhile: the broker is
restarted every minute, the TCP Modbus servers every 3 minutes, one RTU pty is removed and
recreated every 5 minutes, SIGHUP every 4 minutes (a device's interval toggled), and a write
from the cloud every 30 s (answered and read back).

Every minute, just before the broker restart, it samples the daemon's RSS and open descriptors.
At the end the Modbus servers are stopped, the queue drains, the daemon stops, and every batch
polled is looked for among those delivered (a persistent QoS 1 subscriber on a broker that keeps
its queue across restarts). It fails on growth after the warm-up (RSS by more than 1 %, any
descriptor) or on a lost batch.

Usage: python3 bench/soak.py BUILD_DIR [MINUTES] [WARMUP_MINUTES]
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from harness import Broker, Daemon, Procs, Simulator, Subscriber, free_port, http_get, pty_pair, wait_for  # noqa

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
MINUTES = float(sys.argv[2]) if len(sys.argv) > 2 else 30
WARMUP = float(sys.argv[3]) if len(sys.argv) > 3 else 5
os.environ.setdefault("FIELDLINK_BIN_DIR", os.path.join(BUILD, "daemon"))
os.environ.setdefault("FIELDLINK_PLUGIN_DIR", os.path.join(BUILD, "plugins"))


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


class Soak(unittest.TestCase):
    def config(self, interval0):
        devices = []
        for bus, units in (("tcp1", 20), ("tcp2", 20), ("rtu1", 5), ("rtu2", 5)):
            for u in range(1, units + 1):
                interval = interval0 if (bus, u) == ("tcp1", 1) else "1s"
                devices.append(f"""
  - name: {bus}_u{u}
    cloud: c
    bus: {bus}
    unit: {u}
    interval: {interval}
    points:
      - {{ name: counter, area: holding, address: 0, type: uint32 }}
      - {{ name: r5, area: holding, address: 5 }}
      - {{ name: sp, area: holding, address: 20, writable: true }}""")
        return f"""
gateway:
  http: "127.0.0.1:{self.http}"
clouds:
  c: {{ platform: mqtt, host: 127.0.0.1, port: {self.broker.port}, keepalive: 10s, topic: "soak/{{device}}",
       payload: '{{"ts":{{ts_ms}},"values":{{values}}}}', command_topic: "soak/{{device}}/cmd" }}
buses:
  tcp1: {{ driver: modbus-tcp, host: 127.0.0.1, port: {self.tcp[0]}, timeout: 500ms }}
  tcp2: {{ driver: modbus-tcp, host: 127.0.0.1, port: {self.tcp[1]}, timeout: 500ms }}
  rtu1: {{ driver: modbus-rtu, device: {self.rtu[0][0]}, baud: 115200, timeout: 300ms }}
  rtu2: {{ driver: modbus-rtu, device: {self.rtu[1][0]}, baud: 115200, timeout: 300ms }}
devices:{"".join(devices)}
"""

    def test_soak(self):
        procs = self.procs = Procs(self)
        self.http = free_port()
        self.broker = Broker(procs, persistent=True)
        sub = Subscriber(procs, self.broker, ["soak/#"], persistent=True)
        self.tcp = [free_port(), free_port()]
        tcp_sims = [Simulator(procs, tcp_port=p, units=range(1, 21), name="sim-tcp%d.log" % i)
                    for i, p in enumerate(self.tcp)]
        self.rtu = [pty_pair(procs, "rtu%d" % i, with_process=True) for i in range(2)]
        rtu_sims = [Simulator(procs, rtu=r[1], units=range(1, 6), name="sim-rtu%d.log" % i)
                    for i, r in enumerate(self.rtu)]
        daemon = Daemon(procs, self.config("1s"))
        pid = daemon.proc.pid
        wait_for(lambda: len(sub.messages()) > 100, timeout=60, what="data")
        t0 = time.time()
        samples, writes, answered, toggled = [], 0, 0, False
        minute = 0
        while time.time() - t0 < MINUTES * 60:
            time.sleep(30)
            # a write from the cloud every 30 s, to a TCP and an RTU device in turn
            dev = "tcp2_u3" if writes % 2 else "rtu1_u2"
            self.broker.publish("soak/%s/cmd" % dev, json.dumps({"id": "w%d" % writes, "sp": writes % 100}))
            writes += 1
            if int((time.time() - t0) // 60) == minute:
                continue
            minute = int((time.time() - t0) // 60)
            samples.append((minute, rss_kb(pid), fds(pid)))
            print("soak: minute %d: RSS %d kB, %d descriptors, %d messages delivered" % (
                minute, samples[-1][1], samples[-1][2], len(sub.messages())), flush=True)
            self.broker.stop()
            time.sleep(2)
            self.broker.start()
            if minute % 3 == 0:
                for s in tcp_sims:
                    s.stop()
                time.sleep(1)
                tcp_sims = [Simulator(procs, tcp_port=p, units=range(1, 21), name="sim-tcp%d-%d.log" % (i, minute))
                            for i, p in enumerate(self.tcp)]
            if minute % 5 == 0:  # the adapter unplugged and back: the pty goes away and comes again
                rtu_sims[1].stop()
                self.rtu[1][2].terminate()
                self.rtu[1][2].wait(5)
                time.sleep(3)
                self.rtu[1] = pty_pair(procs, "rtu1", with_process=True)
                rtu_sims[1] = Simulator(procs, rtu=self.rtu[1][1], units=range(1, 6), name="sim-rtu1-%d.log" % minute)
            if minute % 4 == 0:
                toggled = not toggled
                daemon.rewrite_config(self.config("2s" if toggled else "1s"))
                os.kill(pid, signal.SIGHUP)
        # The end: the Modbus servers stop (no more good polls), the queue drains, the daemon stops.
        for s in tcp_sims + rtu_sims:
            s.stop()
        wait_for(lambda: json.loads(http_get("http://127.0.0.1:%d/api/status" % self.http)[1] or "{}")
                 .get("store", {}).get("queued_batches", 1) == 0, timeout=300, what="the queue drained")
        time.sleep(5)
        rc, _ = daemon.stop()
        log = daemon.log()
        answered = len([1 for _, t, p in sub.messages() if t.endswith("/reply") or '"success"' in p])
        polled = sum(int(m.group(1)) - int(m.group(2)) for m in
                     re.finditer(r"device \w+: \d+ polls, (\d+) ok, .*?, (\d+) skipped", log))
        delivered = set()
        for _, topic, payload in sub.messages():
            if topic.count("/") == 1:
                try:
                    delivered.add((topic, json.loads(payload)["ts"]))
                except (ValueError, KeyError):
                    pass
        after = [s for s in samples if s[0] >= WARMUP]
        rss_growth = (after[-1][1] - after[0][1]) / after[0][1] if len(after) > 1 else 0.0
        fd_growth = after[-1][2] - after[0][2] if len(after) > 1 else 0
        print("soak: %.0f minutes, 50 devices: %d batches polled, %d delivered (%d lost); writes %d sent, %d answered; "
              "RSS %d -> %d kB after warm-up (%+.2f%%), descriptors %d -> %d; exit %d"
              % (MINUTES, polled, len(delivered), max(0, polled - len(delivered)), writes, answered,
                 after[0][1] if after else 0, after[-1][1] if after else 0, 100 * rss_growth,
                 after[0][2] if after else 0, after[-1][2] if after else 0, rc))
        self.assertEqual(rc, 0)
        self.assertGreaterEqual(len(delivered), polled, "lost batches")
        self.assertLessEqual(rss_growth, 0.01, samples)
        self.assertLessEqual(fd_growth, 0, samples)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]])
