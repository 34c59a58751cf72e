"""A configuration split over conf.d/*.yaml (issue 10, item 6), on the real binary with a real
broker: devices of the fragments are polled and published; a new fragment is checked with
`fieldlinkd --check` and applied with SIGHUP; a broken fragment is refused by --check (exit 2,
naming the fragment's file and line) and by the reload, which keeps the running configuration."""
import os
import signal
import subprocess
import unittest

from harness import BIN, PLUGINS, Broker, Daemon, Procs, Subscriber, wait_for


class ConfDTest(unittest.TestCase):
    def test_fragments_check_and_reload(self):
        procs = Procs(self)
        broker = Broker(procs)
        sub = Subscriber(procs, broker, ["fl/#"])
        confd = procs.path("conf.d")
        os.makedirs(confd)
        with open(os.path.join(confd, "10-plant.yaml"), "w") as f:
            f.write("""
buses:
  plant: { driver: sim }
devices:
  - { name: d1, cloud: c, bus: plant, interval: 200ms, points: [{ name: v, area: holding, address: 0 }] }
""")
        daemon = Daemon(procs, f"""
clouds:
  c: {{ platform: mqtt, host: 127.0.0.1, port: {broker.port}, topic: "fl/{{device}}" }}
buses:
  plc: {{ driver: sim }}
devices:
  - {{ name: d0, cloud: c, bus: plc, interval: 200ms, points: [{{ name: v, area: holding, address: 0 }}] }}
""")

        def topics():
            return {t for _, t, _ in sub.messages()}

        wait_for(lambda: {"fl/d0", "fl/d1"} <= topics(), timeout=15, what="both files' devices")

        def check():
            p = subprocess.run([os.path.join(BIN, "fieldlinkd"), "--check", "--config", daemon.config,
                                "--plugin-dir", PLUGINS], capture_output=True, text=True, timeout=30)
            return p.returncode, p.stdout + p.stderr

        bad = os.path.join(confd, "20-more.yaml")
        with open(bad, "w") as f:
            f.write("""
devices:
  - { name: d1, cloud: c, bus: plant, points: [{ name: v, area: holding, address: 0 }] }
""")
        rc, out = check()
        self.assertEqual(rc, 2, out)
        self.assertIn("%s:3:5: devices.d1: device defined twice: here and at %s:5:5" %
                      (bad, os.path.join(confd, "10-plant.yaml")), out)
        daemon.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "still running the previous configuration" in daemon.log(), timeout=10,
                 what="the reload refused")

        with open(bad, "w") as f:
            f.write("""
devices:
  - { name: d2, cloud: c, bus: plant, interval: 200ms, points: [{ name: v, area: holding, address: 1 }] }
""")
        rc, out = check()
        self.assertEqual(rc, 0, out)
        daemon.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "fl/d2" in topics(), timeout=15, what="the new fragment's device after the reload")
        self.assertEqual(daemon.stop()[0], 0)


if __name__ == "__main__":
    unittest.main()
