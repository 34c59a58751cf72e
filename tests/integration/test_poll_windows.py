"""Poll classes and publish windows end to end: the bundled simulator's counter is a ramp (+1
every 10 ms); fieldlinkd polls it every 100 ms and publishes once a second, each point as its
aggregate of the window's ten polls, into mosquitto. What every message must hold follows from
the ramp alone: count = the polls in the window, min and max its ends, mean their middle, last
its max, and each window starting one poll after the last one ended (nothing lost, nothing
twice). Points polled every 3 s, once, and only after writes come at their own rate."""
import os
import time
import unittest

from harness import Broker, Daemon, Procs, Simulator, Subscriber, free_port, wait_for


class PollWindowTest(unittest.TestCase):
    def test_a_100ms_poll_is_published_once_a_second_with_its_aggregates(self):
        procs = Procs(self)
        broker = Broker(procs)
        sub = Subscriber(procs, broker, ["fieldlink/#"])
        port = free_port()
        Simulator(procs, tcp_port=port, units=[1], tick="10ms")
        counter = "area: holding, address: 0, type: uint32"
        text = f"""
clouds:
  local:
    platform: mqtt
    host: 127.0.0.1
    port: {broker.port}
    topic: "fieldlink/{{device}}"
    payload: '{{"values":{{values}}}}'
buses:
  tcp1: {{ driver: modbus-tcp, host: 127.0.0.1, port: {port}, timeout: 500ms }}
devices:
  - name: meter
    cloud: local
    bus: tcp1
    unit: 1
    interval: 100ms
    publish: 1s
    points:
      - {{ name: lo, {counter}, aggregate: min }}
      - {{ name: hi, {counter}, aggregate: max }}
      - {{ name: avg, {counter}, aggregate: mean }}
      - {{ name: n, {counter}, aggregate: count }}
      - {{ name: now, {counter} }}
      - {{ name: slow, area: holding, address: 10, poll: 3s }}
      - {{ name: serial, area: holding, address: 20, type: string, length: 4, poll: once }}
      - {{ name: mode, area: holding, address: 30, poll: on_write }}
"""
        Daemon(procs, text)
        wait_for(lambda: len(sub.json_messages("fieldlink/meter")) >= 8, timeout=30, what="8 windows")
        msgs = sub.json_messages("fieldlink/meter")
        values = [m[1]["values"] for m in msgs]
        # The first window (from start), the last (perhaps still open) aside: whole windows.
        whole = values[1:-1]
        self.assertGreaterEqual(len(whole), 6)
        for prev, v in zip(values, values[1:]):
            self.assertGreater(v["lo"], prev["hi"], "windows overlap or repeat: %s then %s" % (prev, v))
            # one poll apart: the counter moves about 10 between two 100 ms polls
            self.assertLess(v["lo"] - prev["hi"], 60, "a poll went missing between windows: %s then %s" % (prev, v))
        for v in whole:
            self.assertGreaterEqual(v["n"], 7, v)   # ten 100 ms polls in a second (a loaded machine may miss some)
            self.assertLessEqual(v["n"], 11, v)
            self.assertEqual(v["now"], v["hi"], "last of a rising ramp is its max")
            self.assertLess(v["lo"], v["hi"])
            self.assertAlmostEqual(v["avg"], (v["lo"] + v["hi"]) / 2, delta=(v["hi"] - v["lo"]) / 4 + 1)
        # Once a second, not ten times: the span of the messages' arrival.
        span = msgs[-1][0] - msgs[1][0]
        self.assertGreater(span, (len(msgs) - 2) * 0.8, "messages came faster than one per second")
        # Polled every 3 s: in about every third window; once: in the first window only; on_write:
        # read at start only (no write happened).
        slow = [v for v in values if "slow" in v]
        self.assertGreaterEqual(len(slow), len(values) // 3 - 1)
        self.assertLessEqual(len(slow), len(values) // 3 + 2)
        self.assertEqual([v["slow"] for v in slow], [110] * len(slow))
        self.assertEqual(sum(1 for v in values if "serial" in v), 1)
        self.assertIn("serial", values[0])
        self.assertEqual(sum(1 for v in values if "mode" in v), 1)


if __name__ == "__main__":
    unittest.main()
