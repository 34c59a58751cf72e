"""Modbus RTU line timing (issue 9, item 5) on the real binary: two units on a pty pair served by
strict_rtu.py, a device that loses any request whose first byte arrives less than 3.5 characters
after the line was last busy (libmodbus alone sends at once):

- at 9600 and at 115200 baud, units 1 and 2 polled back to back every 50 ms: no request is lost
  and every poll succeeds;
- a frame from another unit before an answer is discarded, and the answer is waited for, without
  the device or the link going down;
- a unit that answers some requests after the timeout, beside a unit answering at once (issue 19,
  item 1): nothing is sent until the late answer has come and gone, so every value published, over
  many cycles at 9600 and 115200 baud, is the one the server holds at that register; the late
  answers are counted (`late_replies` in the stop line and in /metrics)."""
import json
import os
import re
import sys
import time
import unittest

from harness import Broker, Daemon, Procs, Subscriber, free_port, http_get, pty_pair, wait_for

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


    def run_late_unit(self, baud):
        """Unit 1 answers every 3rd request for register 100 500 ms after it, on a 300 ms timeout
        (the next request goes to the same unit), unit 2 every 4th for register 300 (the next goes
        to the other unit); the rest is answered at once. Both devices read registers 100 and 300
        (two requests each: same function, same count, so only the timing tells their answers
        apart)."""
        procs = Procs(self)
        gw, dev = pty_pair(procs)
        st = procs.path("strict.status")
        procs.start([sys.executable, os.path.join(HERE, "strict_rtu.py"), dev, str(baud), st,
                     "--late", "1:100:3:500", "--late", "2:300:4:500"], "strict.log")
        wait_for(lambda: status(st), what="the strict RTU server")
        broker = Broker(procs)
        sub = Subscriber(procs, broker, ["fieldlink/#"])
        http = free_port()
        points = "[ { name: a, area: holding, address: 100 }, { name: b, area: holding, address: 300 } ]"
        daemon = Daemon(procs, f"""
gateway:
  http: "127.0.0.1:{http}"
clouds:
  c: {{ platform: mqtt, host: 127.0.0.1, port: {broker.port} }}
buses:
  line: {{ driver: modbus-rtu, device: {gw}, baud: {baud}, timeout: 300ms, retries: 0, backoff_max: 300ms }}
devices:
  - {{ name: u1, cloud: c, bus: line, unit: 1, interval: 100ms, points: {points} }}
  - {{ name: u2, cloud: c, bus: line, unit: 2, interval: 100ms, points: {points} }}
""")
        wait_for(lambda: status(st).get("late", 0) >= 8, timeout=120, what="8 late answers on the line")
        wait_for(lambda: len(sub.messages()) >= 40, timeout=60, what="40 samples published")
        metrics = http_get(f"http://127.0.0.1:{http}/metrics")[1]
        self.assertEqual(daemon.stop()[0], 0)
        log = daemon.log()
        # Every value published is the one the server holds there (register = unit * 100 + address).
        seen = {"u1": 0, "u2": 0}
        for _, topic, payload in sub.messages():
            unit = topic.rsplit("/", 1)[-1]
            values = json.loads(payload)
            values = values.get("values", values)
            expected = {"a": int(unit[1]) * 100 + 100, "b": int(unit[1]) * 100 + 300}
            for name, v in values.items():
                if name in expected:
                    self.assertEqual(v, expected[name], "%s.%s published %s: another register's answer (%s)"
                                     % (unit, name, v, payload))
                    seen[unit] += 1
        self.assertGreater(seen["u1"], 10, sub.messages())
        self.assertGreater(seen["u2"], 10, sub.messages())
        s = status(st)
        self.assertEqual(s["violations"], 0, s)  # nothing was sent while the late unit was busy
        m = re.search(r"bus line: (\d+) late replies", log)
        self.assertTrue(m and int(m.group(1)) >= 1, log)
        m = re.search(r'fieldlink_bus_driver_events_total\{bus="line",event="late_replies"\} (\d+)', metrics)
        self.assertTrue(m and int(m.group(1)) >= 1, metrics)

    def test_late_answers_are_not_taken_for_the_next_request_9600(self):
        self.run_late_unit(9600)

    def test_late_answers_are_not_taken_for_the_next_request_115200(self):
        self.run_late_unit(115200)


if __name__ == "__main__":
    unittest.main()
