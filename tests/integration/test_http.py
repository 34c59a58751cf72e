"""Metrics, health and the status page over HTTP (issue 10, item 5), on the real binary with a
real broker, one device on the sim driver and one on Modbus TCP from the bundled simulator:

- /metrics is Prometheus text with per-session and per-device counters and build info;
  /healthz says healthy; /api/status (what `fieldlink status` reads) carries the devices and the
  latest value of every point; /api/runtime the buses, their devices' states and recent warnings;
- nothing served shows a secret (a device key, a cloud password);
- anything but GET and HEAD is refused (405) on every path;
- an address that cannot be bound is a start-up error (exit 1) that names it;
- the page in headless Chromium: it loads, shows the devices, and their values change between two
  looks; a screenshot is kept (build/test-artifacts/status-page.png)."""
import json
import os
import shutil
import socket
import subprocess
import time
import unittest

from harness import BIN, PLUGINS, Broker, Daemon, Procs, Simulator, free_port, http_get, wait_for

BUILD = os.path.abspath(os.environ.get("FIELDLINK_BUILD_DIR", "build"))
KEY = "c2VjcmV0LWtleS1tdXN0LW5vdC1sZWFrLTEyMzQ="
PASSWORD = "pa55-must-not-leak"


def chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


class HttpTest(unittest.TestCase):
    def start(self, procs):
        """A broker, the Modbus simulator and fieldlinkd serving HTTP: (daemon, base URL without the
        trailing slash)."""
        broker_port = Broker(procs).port
        modbus_port = free_port()
        Simulator(procs, tcp_port=modbus_port, units=(1,))
        http_port = free_port()
        return Daemon(procs, f"""
gateway:
  http: 127.0.0.1:{http_port}
clouds:
  c: {{ platform: mqtt, host: 127.0.0.1, port: {broker_port}, topic: "fl/{{device}}", username: u, password: "{PASSWORD}" }}
buses:
  plc: {{ driver: sim }}
  tcp: {{ driver: modbus-tcp, host: 127.0.0.1, port: {modbus_port}, timeout: 300ms }}
devices:
  - name: boiler
    cloud: c
    bus: plc
    key: "{KEY}"
    interval: 200ms
    points:
      - {{ name: temperature, area: holding, address: 0, scale: 0.1 }}
      - {{ name: burner, area: coil, address: 0 }}
  - name: meter
    cloud: c
    bus: tcp
    unit: 1
    interval: 200ms
    points:
      - {{ name: counter, area: holding, address: 0, type: uint32 }}
"""), "http://127.0.0.1:%d" % http_port

    def test_metrics_pass_promtool(self):
        """/metrics as Prometheus's own checker reads it: `promtool check metrics` (from Debian's
        prometheus package) finds nothing, and, checked here too, every family has # HELP and
        # TYPE and its lines come together (two sessions, two buses, the store, the HTTP server)."""
        promtool = shutil.which("promtool") or "/var/cache/fieldlink-test/promtool"
        if not os.access(promtool, os.X_OK):
            self.skipTest("promtool is not installed (scripts/deps.sh --test takes it from the prometheus package)")
        procs = Procs(self)
        daemon, base = self.start(procs)
        wait_for(lambda: "fieldlink_session_connected" in http_get(base + "/metrics")[1], timeout=15,
                 what="the sessions in /metrics")
        metrics = http_get(base + "/metrics")[1]
        p = subprocess.run([promtool, "check", "metrics"], input=metrics, capture_output=True, text=True, timeout=60)
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""), metrics)
        typed, helped, seen, current = set(), set(), [], None
        for line in metrics.splitlines():
            if line.startswith("# TYPE "):
                typed.add(line.split()[2])
            elif line.startswith("# HELP "):
                helped.add(line.split()[2])
            elif line:
                family = line.split("{")[0].split()[0]
                if family != current:
                    self.assertNotIn(family, seen, "the lines of %s are not together" % family)
                    seen.append(family)
                    current = family
        self.assertEqual(set(seen) - typed, set())
        self.assertEqual(set(seen) - helped, set())
        for family in ("fieldlink_samples_sent_total", "fieldlink_device_polls_total", "fieldlink_store_bytes",
                       "fieldlink_writes_total", "fieldlink_http_connections", "fieldlink_disk_writable"):
            self.assertIn(family, seen)
        self.assertEqual(daemon.stop()[0], 0, daemon.log())

    def test_endpoints_secrets_and_methods(self):
        procs = Procs(self)
        daemon, base = self.start(procs)
        wait_for(lambda: "metrics, health and status page on" in daemon.log(), timeout=10, what="the HTTP server")
        wait_for(lambda: http_get(base + "/api/status")[0] == 200 and
                 all("value" in p for d in json.loads(http_get(base + "/api/status")[1])["devices"] for p in d["points"]),
                 timeout=15, what="a status with every point's value")

        code, body = http_get(base + "/healthz")
        self.assertEqual((code, json.loads(body)), (200, {"healthy": True}))
        code, metrics = http_get(base + "/metrics")
        self.assertEqual(code, 200)
        for line in ('fieldlink_device_polls_total{device="boiler",bus="plc"}',
                     'fieldlink_device_up{device="meter",bus="tcp"} 1',
                     'fieldlink_session_connected{session="boiler"} 1', "fieldlink_store_queued_batches",
                     'fieldlink_writes_total{session="meter",result="ok"} 0', 'fieldlink_build_info{version="'):
            self.assertIn(line, metrics)
        status = json.loads(http_get(base + "/api/status")[1])
        devices = {d["name"]: d for d in status["devices"]}
        self.assertEqual(set(devices), {"boiler", "meter"})
        self.assertEqual([p["name"] for p in devices["boiler"]["points"]], ["temperature", "burner"])
        self.assertIn(devices["meter"]["points"][0]["quality"], ("fresh", "held"))
        runtime = json.loads(http_get(base + "/api/runtime")[1])
        buses = {b["name"]: b for b in runtime["buses"]}
        self.assertEqual(buses["tcp"]["driver"], "modbus-tcp")
        self.assertTrue(buses["plc"]["alive"])
        self.assertEqual(buses["tcp"]["devices"][0]["state"], "ok")
        # The same data as `fieldlink status` reads: the file in the data directory.
        with open(os.path.join(daemon.data_dir, "status.json")) as f:
            self.assertEqual(set(json.load(f)), set(status))
        p = subprocess.run([os.path.join(BIN, "fieldlink"), "status", "--data-dir", daemon.data_dir, "--values"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        rows = [l.split() for l in p.stdout.splitlines()]
        self.assertIn(["DEVICE", "POINT", "VALUE", "QUALITY", "AGE", "s"], rows)
        self.assertTrue(any(r[:2] == ["boiler", "temperature"] and r[3] in ("fresh", "held") for r in rows),
                        p.stdout)

        for path in ("/", "/metrics", "/healthz", "/api/status", "/api/runtime"):
            code, body = http_get(base + path)
            self.assertEqual(code, 200, path)
            self.assertNotIn(KEY, body, path)
            self.assertNotIn(PASSWORD, body, path)
            for method in ("POST", "PUT", "DELETE", "PATCH"):
                self.assertEqual(http_get(base + path, method)[0], 405, (method, path))
        self.assertEqual(http_get(base + "/metrics", "HEAD")[0], 200)
        self.assertEqual(http_get(base + "/nothing")[0], 404)
        self.assertEqual(daemon.stop()[0], 0)

    def test_an_address_that_cannot_be_bound_is_a_start_up_error(self):
        procs = Procs(self)
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        self.addCleanup(taken.close)
        port = taken.getsockname()[1]
        path = procs.write("c.yaml", f"""
gateway:
  data_dir: {procs.path("data")}
  http: 127.0.0.1:{port}
clouds:
  c: {{ platform: mqtt, host: 127.0.0.1, port: 1, topic: "fl/{{device}}" }}
buses:
  plc: {{ driver: sim }}
devices:
  - {{ name: d, cloud: c, bus: plc, points: [{{ name: v, area: holding, address: 0 }}] }}
""")
        p = subprocess.run([os.path.join(BIN, "fieldlinkd"), "--config", path, "--plugin-dir", PLUGINS],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("gateway.http: cannot listen on 127.0.0.1:%d: Address already in use" % port, p.stderr)
        # and a malformed address is a configuration error (exit 2)
        with open(path) as f:
            bad = procs.write("bad.yaml", f.read().replace("127.0.0.1:%d" % port, "127.0.0.1:99999"))
        p = subprocess.run([os.path.join(BIN, "fieldlinkd"), "--check", "--config", bad], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn("gateway.http: '127.0.0.1:99999' is not a listen address", p.stdout + p.stderr)

    @unittest.skipUnless(chromium(), "chromium is not installed")
    def test_the_page_in_headless_chromium(self):
        procs = Procs(self)
        daemon, base = self.start(procs)
        base += "/"
        wait_for(lambda: http_get(base + "api/status")[0] == 200, timeout=15, what="the status")
        time.sleep(1.5)
        profile = procs.path("chromium-profile")
        cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--user-data-dir=" + profile, "--virtual-time-budget=3000"]

        def dom():
            p = subprocess.run(cmd + ["--dump-dom", base], capture_output=True, text=True, timeout=120)
            self.assertIn("<table", p.stdout, p.stderr[-2000:])
            return p.stdout

        def temperature(html):
            # the row of boiler/temperature: <td>boiler</td><td>plc</td><td>c</td><td>temperature</td><td>VALUE</td>
            marker = "<td>temperature</td><td class=\"value\">"
            at = html.find(marker)
            self.assertGreater(at, 0, html[:3000])
            return html[at + len(marker):html.index("</td>", at + len(marker))]

        first = dom()
        for text in ("fieldlink gateway", "<td>boiler</td>", "<td>meter</td>", "<td>counter</td>", "<td>plc</td>",
                     "<td class=\"ok\">alive</td>"):
            self.assertIn(text, first)
        self.assertIn('<div id="updated">updated ', first, "the page read the gateway's data")
        self.assertNotIn(KEY, first)
        time.sleep(2)
        second = dom()
        self.assertNotEqual(temperature(first), temperature(second), "the values change")

        artifacts = os.path.join(BUILD, "test-artifacts")
        os.makedirs(artifacts, exist_ok=True)
        shot = os.path.join(artifacts, "status-page.png")
        subprocess.run(cmd + ["--window-size=1200,1000", "--screenshot=" + shot, base], capture_output=True,
                       text=True, timeout=120)
        self.assertTrue(os.path.exists(shot) and os.path.getsize(shot) > 10000, shot)
        print("screenshot: %s" % shot)
        self.assertEqual(daemon.stop()[0], 0)


if __name__ == "__main__":
    unittest.main()
