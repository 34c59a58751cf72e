"""The user-facing contract of the binaries: flags, exit codes, --check / --plan, plugin refusal,
`fieldlink token`."""
import os
import resource
import shutil
import subprocess
import unittest

import time

from harness import BIN, PLUGINS, Procs, Simulator, free_port, run_cli

FIELDLINKD = os.path.join(BIN, "fieldlinkd")
FIELDLINK = os.path.join(BIN, "fieldlink")
FUTURE_PLUGIN = os.environ.get("FIELDLINK_FUTURE_PLUGIN", "build/test-plugins/fl_future_abi.so")

GOOD = """
clouds:
  local: { platform: mqtt, host: 127.0.0.1 }
buses:
  sim1: { driver: sim }
devices:
  - name: boiler
    cloud: local
    bus: sim1
    points:
      - { name: a, area: holding, address: 0 }
      - { name: b, area: holding, address: 2, type: float32 }
      - { name: c, area: coil, address: 7 }
"""


def many_sessions(n):
    devices = "".join("  - { name: d%d, cloud: local, bus: sim1, points: [ { name: a, area: holding, address: 0 } ] }\n" % i
                      for i in range(n))
    return "clouds:\n  local: { platform: mqtt, host: 127.0.0.1 }\nbuses:\n  sim1: { driver: sim }\ndevices:\n" + devices


class CliTest(unittest.TestCase):
    def setUp(self):
        self.procs = Procs(self)

    def check(self, text, *extra, plugin_dir=PLUGINS):
        path = self.procs.write("c.yaml", text)
        return run_cli([FIELDLINKD, "--check", "--config", path, "--plugin-dir", plugin_dir] + list(extra))

    def test_a_configuration_needing_more_descriptors_than_the_hard_limit_is_refused_with_the_numbers(self):
        path = self.procs.write("many.yaml", "gateway: { data_dir: %s }\n" % self.procs.path("data") + many_sessions(300))
        low_limit = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
        for extra in (["--check"], []):
            p = subprocess.run([FIELDLINKD, "--config", path, "--plugin-dir", PLUGINS] + extra, capture_output=True,
                               text=True, timeout=30, preexec_fn=low_limit)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn("this configuration needs about", p.stderr)
            self.assertIn("300 cloud session(s)", p.stderr)
            self.assertIn("the hard limit (RLIMIT_NOFILE) of this process is 256", p.stderr)
            self.assertIn("LimitNOFILE=", p.stderr)
        # With enough descriptors the same file is fine.
        rc, out, err = run_cli([FIELDLINKD, "--check", "--config", path, "--plugin-dir", PLUGINS])
        self.assertEqual(rc, 0, err)

    def test_help_version_and_bad_usage(self):
        rc, out, _ = run_cli([FIELDLINKD, "--help"])
        self.assertEqual(rc, 0)
        self.assertIn("--config", out)
        rc, out, _ = run_cli([FIELDLINKD, "--version"])
        self.assertEqual(rc, 0)
        self.assertRegex(out, r"^fieldlinkd \d+\.\d+\.\d+")
        self.assertEqual(run_cli([FIELDLINKD, "--no-such-flag"])[0], 2)
        self.assertEqual(run_cli([FIELDLINKD])[0], 2)  # --config is required
        self.assertEqual(run_cli([FIELDLINK])[0], 2)  # a subcommand is required

    def test_check_accepts_a_valid_file(self):
        rc, out, err = self.check(GOOD)
        self.assertEqual(rc, 0, err)
        self.assertIn("configuration OK: 1 cloud(s), 1 bus(es), 1 device(s), 3 point(s)", out)

    def test_check_reports_errors_with_position_and_exit_2(self):
        rc, _, err = self.check(GOOD.replace("address: 2,", "address: -1,"))
        self.assertEqual(rc, 2)
        self.assertIn("c.yaml:12:44: devices[0].points[1].address: -1 is out of range; expected a 0-based "
                      "protocol address 0..65535", err)
        rc, _, err = self.check(GOOD.replace("sim1: { driver: sim }", "sim1: { driver: sim, speed: 9 }"))
        self.assertEqual(rc, 2)
        self.assertIn("unknown key 'speed' for driver sim", err)
        rc, _, err = run_cli([FIELDLINKD, "--check", "--config", "/nonexistent.yaml"])
        self.assertEqual(rc, 2)
        self.assertIn("/nonexistent.yaml: cannot open the configuration file", err)

    def test_plan_shows_coalesced_requests(self):
        rc, out, err = self.check(GOOD, "--plan")
        self.assertEqual(rc, 0, err)
        self.assertIn("device boiler (bus sim1, unit 1, every 5000ms): 2 requests per cycle", out)
        self.assertIn("read holding 0..3 (4 registers): a b", out)
        self.assertIn("read coil 7..7 (1 bits): c", out)

    def line(self, devices, strict=False):
        """A 9600-baud RTU line with `devices` meters of 60 registers each, polled every second."""
        text = ("gateway: { strict: %s }\nclouds:\n  local: { platform: mqtt, host: 127.0.0.1 }\n"
                "buses:\n  line1: { driver: modbus-rtu, device: /dev/ttyUSB0, baud: 9600 }\ndevices:\n"
                % ("true" if strict else "false"))
        for u in range(1, devices + 1):
            text += ("  - { name: m%d, cloud: local, bus: line1, unit: %d, interval: 1s, points: "
                     "[ { name: block, area: holding, address: 0, type: string, length: 60 } ] }\n" % (u, u))
        return text

    def test_plan_gives_each_serial_line_its_budget_and_warns_when_it_cannot_keep_its_schedule(self):
        # One request of 60 registers at 9600 baud: 20 characters of framing and silent intervals
        # and 120 of data at 1.146 ms each, and the 5 ms turnaround: 165.4 ms per meter and second.
        rc, out, err = self.check(self.line(6), "--plan")
        self.assertEqual(rc, 0, err)
        self.assertIn("bus line1 (modbus-rtu, 9600 baud): 6 device(s) need 992 ms of line time every 1000 ms (99%)",
                      out)
        self.assertNotIn("warning", err)
        rc, out, err = self.check(self.line(7))
        self.assertEqual(rc, 0, err)  # a warning: the configuration is still accepted
        self.assertIn("warning: ", err)
        self.assertIn("buses.line1: bus line1 (modbus-rtu, 9600 baud): 7 device(s) need 1158 ms of line time every "
                      "1000 ms (116%); the line cannot keep its schedule", err)
        rc, out, err = self.check(self.line(7, strict=True))
        self.assertEqual(rc, 2, err)  # gateway.strict: refused
        self.assertIn("7 device(s) need 1158 ms", err)
        self.assertIn("(an error under gateway.strict)", err)
        self.assertIn("1 error; the configuration was not accepted", err)

    def test_a_typo_gets_the_nearest_valid_word(self):
        rc, _, err = self.check(GOOD.replace("address: 2", "adress: 2"))
        self.assertEqual(rc, 2)
        self.assertIn("unknown key 'adress' (did you mean 'address'?)", err)
        rc, _, err = self.check(GOOD.replace("type: float32", "type: flot32"))
        self.assertIn("unknown value 'flot32' (did you mean 'float32'?)", err)
        rc, _, err = self.check(GOOD.replace("driver: sim", "driver: simm"))
        self.assertIn("driver 'simm' is not available (did you mean 'sim'?)", err)

    def test_simulate_with_a_configuration_serves_its_units_with_plausible_values(self):
        path = self.procs.write("sim.yaml", """
clouds:
  local: { platform: mqtt, host: 127.0.0.1 }
buses:
  tcp1: { driver: modbus-tcp, host: 127.0.0.1, port: 1502 }
devices:
  - name: boiler
    cloud: local
    bus: tcp1
    unit: 3
    points:
      - { name: flow, area: holding, address: 0, type: float32 }
      - { name: setpoint, area: holding, address: 10, type: float32, writable: true, min: 0, max: 50 }
      - { name: temp, area: holding, address: 12, type: int16, scale: 0.1 }
      - { name: label, area: holding, address: 20, type: string, length: 4 }
      - { name: pump, area: coil, address: 5 }
      - { name: alarm, area: coil, address: 6 }
  - { name: tank, cloud: local, bus: tcp1, unit: 7, points: [ { name: level, area: input, address: 4 } ] }
""")
        sim = Simulator(self.procs, tcp_port=free_port(), config=path)
        self.assertEqual(sim.get(3, "holding", 0, 2), [0x41A0, 0])  # 20.0, not the counter
        self.assertEqual(sim.get(3, "holding", 10, 2), [0x41C8, 0])  # 25.0: the middle of 0..50
        self.assertEqual(sim.get(3, "holding", 12), [102])  # raw 100 + its index: 10.2
        self.assertEqual(sim.get(3, "holding", 20, 4), [0x6C61, 0x6265, 0x6C00, 0])  # "label"
        self.assertEqual(sim.get(3, "coil", 5, 2), [1, 0])  # alternating
        self.assertEqual(sim.get(7, "input", 4), [100])  # unit 7 is served too
        first = sim.get(3, "input", 0, 2)  # no point there: the counter still counts
        time.sleep(0.3)
        self.assertGreater(sim.get(3, "input", 0, 2), first)
        bad = self.procs.write("bad.yaml", "devices: []\nbogus: 1\n")
        rc, _, err = run_cli([FIELDLINK, "simulate", "--tcp", "127.0.0.1:%d" % free_port(), "--config", bad])
        self.assertEqual(rc, 2)
        self.assertIn("is not a valid configuration", err)

    def test_a_points_file_is_checked_planned_and_served_by_the_simulator(self):
        self.procs.write("meter.csv", "# a meter's register map\n"
                         "name,area,address,type,order,scale,unit,writable,min,max\n"
                         "voltage,input,0,float32,,,V,,,\n"
                         "current,input,2,float32,cdab,,A,,,\n"
                         "limit,holding,10,uint16,,0.1,kW,true,0,100\n")
        text = ("clouds:\n  local: { platform: mqtt, host: 127.0.0.1 }\n"
                "buses:\n  tcp1: { driver: modbus-tcp, host: 127.0.0.1, port: 1502 }\n"
                "devices:\n  - { name: m1, cloud: local, bus: tcp1, unit: 5, points_file: meter.csv }\n")
        rc, out, err = self.check(text, "--plan")  # relative to the configuration's directory
        self.assertEqual(rc, 0, err)
        self.assertIn("read input 0..3 (4 registers): voltage current", out)
        sim = Simulator(self.procs, tcp_port=free_port(), config=self.procs.path("c.yaml"))
        self.assertEqual(sim.get(5, "input", 0, 4), [0x41A0, 0, 0, 0x41AC])  # 20.0, then 21.5 word-swapped
        self.assertEqual(sim.get(5, "holding", 10), [500])  # 50.0 kW: the middle of 0..100, raw ×10
        self.procs.write("meter.csv", "name,area,address,type\nvoltage,input,0,float33\n")
        rc, _, err = self.check(text)
        self.assertEqual(rc, 2)
        self.assertIn("meter.csv:2:17: devices[0].points_file[line 2].type: unknown value 'float33' "
                      "(did you mean 'float32'?)", err)

    def test_plugin_for_an_unknown_abi_version_is_refused(self):
        d = self.procs.path("plugins")
        os.mkdir(d)
        shutil.copy(FUTURE_PLUGIN, os.path.join(d, "fl_future.so"))
        rc, _, err = self.check(GOOD, plugin_dir=d)
        self.assertEqual(rc, 2)
        self.assertIn("fl_future.so: refused: it supports none of the driver ABI versions this host speaks (2)", err)
        self.assertIn("driver 'sim' is not available; installed drivers: (none loaded)", err)

    def test_token_command_matches_the_reference_vector(self):
        rc, out, _ = run_cli([FIELDLINK, "token", "--product", "469948", "--device", "Chic_D", "--key",
                              "rs2FaE5BuygJZkWKDA5okKt1RFpwOx53hbu6hwyCS4U=", "--method", "sha1",
                              "--expiry", "1673053248"])
        self.assertEqual(rc, 0)
        self.assertEqual(out.strip(), "version=2018-10-31&res=products%2F469948%2Fdevices%2FChic_D&et=1673053248"
                                      "&method=sha1&sign=prIMDQ23WFI6PMj2IWpaRJJL4eE%3D")
        rc, _, err = run_cli([FIELDLINK, "token", "-p", "1", "-k", "%%%", "-e", "1"])
        self.assertEqual(rc, 2)
        self.assertIn("not valid Base64", err)

    def test_token_differential_against_an_independent_implementation(self):
        # OneNET's token formula as its documentation states it, written here in Python (hmac,
        # base64, urllib), against `fieldlink token` over random products, devices, keys,
        # methods and expiries; product-level tokens too.
        import base64
        import hashlib
        import hmac
        import random
        import string
        import urllib.parse

        def reference(pid, dev, key_b64, method, et):
            res = "products/%s/devices/%s" % (pid, dev) if dev else "products/%s" % pid
            msg = "\n".join([str(et), method, res, "2018-10-31"]).encode()
            sign = base64.b64encode(hmac.new(base64.b64decode(key_b64), msg, getattr(hashlib, method)).digest())
            q = lambda v: urllib.parse.quote(v, safe="")
            return "version=2018-10-31&res=%s&et=%d&method=%s&sign=%s" % (q(res), et, method, q(sign.decode()))

        rng = random.Random(20261123)
        for _ in range(150):
            pid = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(rng.randint(1, 12)))
            dev = "".join(rng.choice(string.ascii_letters + string.digits + "_-") for _ in range(rng.randint(0, 32)))
            key = base64.b64encode(bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))).decode()
            method = rng.choice(["md5", "sha1", "sha256"])
            et = rng.randint(1_000_000_000, 4_000_000_000)
            args = [FIELDLINK, "token", "-p", pid, "-k", key, "-m", method, "-e", str(et)] + (["-d", dev] if dev else [])
            rc, out, err = run_cli(args)
            self.assertEqual(rc, 0, err)
            self.assertEqual(out.strip(), reference(pid, dev, key, method, et), args)

    def test_fieldlink_check_subcommand(self):
        path = self.procs.write("c.yaml", GOOD)
        rc, out, _ = run_cli([FIELDLINK, "check", path, "--plugin-dir", PLUGINS])
        self.assertEqual(rc, 0)
        self.assertIn("configuration OK", out)


if __name__ == "__main__":
    unittest.main()
