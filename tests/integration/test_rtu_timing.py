"""Modbus RTU line timing (issue 9, item 5) on the real binary: two units on a pty pair served by
strict_rtu.py, a device that loses any request whose first byte arrives less than 3.5 characters
after the line was last busy (libmodbus alone sends at once):

- at 9600 and at 115200 baud, units 1 and 2 polled back to back every 50 ms: no request is lost
  and every poll succeeds;
- a frame from another unit before an answer is discarded, and the request goes again, without
  the device or the link going down."""
import os
import re
import sys
import time
import unittest

from harness import Broker, Daemon, Procs, Subscriber, pty_pair, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))


def status(path):
    try:
        with open(path) as f:
            words = f.read().split()
    except OSError:
        return {}
    return dict(zip(words[::2], (int(x) for x in words[1::2])))


class RtuTimingTest(unittest.TestCase):
    def run_line(self, baud, stray=0, extra=""):
        procs = Procs(self)
        gw, dev = pty_pair(procs)
        st = procs.path("strict.status")
        args = [sys.executable, os.path.join(HERE, "strict_rtu.py"), dev, str(baud), st]
        if stray:
            args += ["--stray", str(stray)]
        procs.start(args, "strict.log")
        wait_for(lambda: status(st), what="the strict RTU server")
        broker = Broker(procs)
        sub = Subscriber(procs, broker, ["fieldlink/#"])
        daemon = Daemon(procs, f"""
clouds:
  c: {{ platform: mqtt, host: 127.0.0.1, port: {broker.port} }}
buses:
  line: {{ driver: modbus-rtu, device: {gw}, baud: {baud}, timeout: 2s, retries: 0{extra} }}
devices:
  - {{ name: u1, cloud: c, bus: line, unit: 1, interval: 50ms, points: [ {{ name: a, area: holding, address: 3 }} ] }}
  - {{ name: u2, cloud: c, bus: line, unit: 2, interval: 50ms, points: [ {{ name: a, area: holding, address: 3 }} ] }}
""")
        wait_for(lambda: status(st).get("requests", 0) >= 100, timeout=30, what="100 requests on the line")
        self.assertEqual(daemon.stop()[0], 0)
        s = status(st)
        log = daemon.log()
        values = {t: p for _, t, p in sub.messages()}
        self.assertIn('"a":103', values.get("fieldlink/u1", ""))
        self.assertIn('"a":203', values.get("fieldlink/u2", ""))
        # every poll answered: "device uN: P polls, P ok, 0 timeouts, ..." (the last poll may have
        # been cut short by the stop)
        for unit in ("u1", "u2"):
            m = re.search(r"device %s: (\d+) polls, (\d+) ok, (\d+) timeouts" % unit, log)
            self.assertTrue(m and int(m.group(2)) >= int(m.group(1)) - 1 and m.group(3) == "0", log)
        return s, log

    def test_9600_baud(self):
        s, log = self.run_line(9600)
        self.assertEqual(s["violations"], 0, s)

    def test_115200_baud(self):
        s, log = self.run_line(115200)
        self.assertEqual(s["violations"], 0, s)

    def test_unit_switch_delay(self):
        s, log = self.run_line(115200, extra=", unit_switch_delay: 5ms")
        self.assertEqual(s["violations"], 0, s)

    def test_frames_from_another_unit_are_discarded(self):
        s, log = self.run_line(115200, stray=5)
        self.assertEqual(s["violations"], 0, s)
        self.assertGreaterEqual(s["requests"], 100)
        self.assertNotIn("backing off", log)
        self.assertNotIn("link down", log)
        self.assertNotIn("malformed response", log)


if __name__ == "__main__":
    unittest.main()
