"""Report by exception and per-point quality (issue 9, item 6) on the real binary, with the device
on Modbus TCP (the bundled simulator: holding 0..1 is a counter that ramps every tick, the other
registers hold still unless the test sets them), published per point to a plain broker:

- a ramp with `deadband: 10` goes only when it moved more than 10 from the value last sent;
- a constant with `on_change` goes once, then on every change, and with `heartbeat: 2s` every 2 s;
- a percentage deadband; a property without any of these goes with every poll;
- a point whose read fails (a Modbus exception on its request) is left out, while the device's
  other points keep coming and its link stays up."""
import json
import time
import unittest

from harness import Broker, Daemon, Procs, Simulator, Subscriber, free_port, wait_for


class ReportByExceptionTest(unittest.TestCase):
    def test_deadband_on_change_heartbeat_and_a_failing_point(self):
        procs = Procs(self)
        port = free_port()
        sim = Simulator(procs, tcp_port=port, units=(1,), tick="50ms")
        sim.cmd("set 1 holding 5 100 1000")
        broker = Broker(procs)
        sub = Subscriber(procs, broker, ["fl/#"])
        daemon = Daemon(procs, f"""
clouds:
  c: {{ platform: mqtt, host: 127.0.0.1, port: {broker.port}, topic: "fl/{{device}}/{{point}}", payload: "{{value}}" }}
buses:
  plc: {{ driver: modbus-tcp, host: 127.0.0.1, port: {port}, timeout: 300ms, max_gap: 0 }}
devices:
  - name: m1
    cloud: c
    bus: plc
    unit: 1
    interval: 200ms
    link_event: link
    points:
      - {{ name: ramp, area: holding, address: 0, type: uint32, deadband: 10 }}
      - {{ name: still, area: holding, address: 5, on_change: true, heartbeat: 2s }}
      - {{ name: pct, area: holding, address: 6, deadband: 5% }}
      - {{ name: plain, area: holding, address: 7 }}
      - {{ name: broken, area: holding, address: 50 }}
""")

        def values(point):
            return [(t, json.loads(p)) for t, topic, p in sub.messages() if topic == "fl/m1/" + point]

        wait_for(lambda: len(values("plain")) >= 5, timeout=20, what="the first polls")
        sim.cmd("fail 1 holding 50")  # from now on the request of `broken` gets exception 2
        t0 = time.time()
        time.sleep(5)
        sim.cmd("set 1 holding 5 101")  # the constant changes: on_change sends it
        sim.cmd("set 1 holding 6 1040")  # 4% of 1000: inside the 5% deadband
        wait_for(lambda: [v for _, v in values("still")][-1] == 101, timeout=5, what="the change of still")
        sim.cmd("set 1 holding 6 1060")  # 6%: outside
        wait_for(lambda: [v for _, v in values("pct")][-1] == 1060, timeout=5, what="pct past its deadband")
        t1 = time.time()
        self.assertEqual(daemon.stop()[0], 0)

        ramp = [v for _, v in values("ramp")]
        self.assertGreater(len(ramp), 3)
        self.assertTrue(all(b - a > 10 for a, b in zip(ramp, ramp[1:])), ramp)
        still = [(t, v) for t, v in values("still")]
        self.assertEqual(still[0][1], 100)
        self.assertEqual([v for _, v in still], [100] * (len(still) - 1) + [101])
        # heartbeats: about one per 2 s while it held still, never one per poll
        held = [t for t, v in still if v == 100 and t0 <= t <= t1]
        self.assertGreaterEqual(len(held), 2)
        self.assertLessEqual(len(held), 4)
        self.assertEqual([v for _, v in values("pct")], [1000, 1060])
        plain = values("plain")
        self.assertGreater(len(plain), 5 * len(held), "a plain property goes with every poll")
        # The failing point is left out; the others and the link are untouched by it.
        broken_after = [t for t, _ in values("broken") if t > t0 + 1]
        self.assertEqual(broken_after, [])
        self.assertGreater(len([t for t, _ in plain if t > t0 + 1]), 10)
        self.assertEqual([v for _, v in values("online")], [True], "the link never went down")
        self.assertIn("Modbus exception", daemon.log())


if __name__ == "__main__":
    unittest.main()
