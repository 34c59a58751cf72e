"""Several units on one RTU line (socat pty pair), strictly serialized; a unit switched off
mid-run is backed off while its neighbours keep their rate. Also RTU framing over TCP through a
serial-to-Ethernet converter (socat TCP <-> pty)."""
import json
import time
import unittest

from harness import (Broker, Daemon, Procs, Simulator, Subscriber, free_port, http_get, pty_pair, tcp_to_pty,
                     wait_for)


def config(broker_port, bus_yaml, units, interval="200ms"):
    devices = "".join(f"""
  - name: meter{u}
    cloud: local
    bus: line1
    unit: {u}
    interval: {interval}
    points:
      - {{ name: counter, area: holding, address: 0, type: uint32 }}
      - {{ name: r5, area: holding, address: 5 }}
      - {{ name: r9, area: input, address: 9 }}
      - {{ name: c6, area: coil, address: 6 }}
""" for u in units)
    return f"""
clouds:
  local:
    platform: mqtt
    host: 127.0.0.1
    port: {broker_port}
    topic: "fieldlink/{{device}}"
    payload: '{{"ts":{{ts_ms}},"values":{{values}}}}'
buses:
  line1:
{bus_yaml}
    retries: 1
    backoff_max: 2s
devices:{devices}"""


def samples(sub, device):
    return [(t, m) for t, m in sub.json_messages("fieldlink/" + device)]


def rate(msgs, t0, t1):
    n = sum(1 for _, m in msgs if t0 <= m["ts"] / 1000 < t1)
    return n / (t1 - t0)


class RtuLineTest(unittest.TestCase):
    def check_values(self, sub, unit):
        msgs = samples(sub, "meter%d" % unit)
        self.assertTrue(msgs, "no data from unit %d" % unit)
        counters = []
        for _, m in msgs:
            v = m["values"]
            self.assertEqual(v["r5"], unit * 100 + 5)
            self.assertEqual(v["r9"], unit * 100 + 9)
            self.assertEqual(v["c6"], True)  # 6 % 3 == 0
            counters.append(v["counter"])
        self.assertEqual(counters, sorted(counters))
        return msgs

    def test_three_units_one_switched_off(self):
        procs = Procs(self)
        broker = Broker(procs)
        sub = Subscriber(procs, broker, ["fieldlink/#"])
        gw_side, dev_side = pty_pair(procs)
        sim = Simulator(procs, rtu=dev_side, units=(1, 2, 3))
        bus = f"    driver: modbus-rtu\n    device: {gw_side}\n    baud: 38400\n    timeout: 150ms"
        daemon = Daemon(procs, config(broker.port, bus, (1, 2, 3)))
        wait_for(lambda: all(len(samples(sub, "meter%d" % u)) >= 8 for u in (1, 2, 3)), timeout=30,
                 what="data from all three units")
        t_off = time.time()
        sim.cmd("off 2")
        time.sleep(4.0)
        t_on = time.time()
        sim.cmd("on 2")
        wait_for(lambda: any(m["ts"] / 1000 > t_on for _, m in samples(sub, "meter2")), timeout=15,
                 what="unit 2 to be polled again after it came back")
        rc, _ = daemon.stop()
        self.assertEqual(rc, 0)

        for u in (1, 2, 3):
            self.check_values(sub, u)
        # While unit 2 was silent its neighbours kept their rate (interval 200 ms = 5/s); compare
        # with their own rate before, in the same run, rather than with a fixed number.
        for u in (1, 3):
            msgs = samples(sub, "meter%d" % u)
            first = msgs[0][1]["ts"] / 1000
            before = rate(msgs, first, t_off)
            during = rate(msgs, t_off + 0.5, t_on)
            self.assertGreater(during, 0.6 * before, "unit %d slowed down: %.2f/s -> %.2f/s" % (u, before, during))
        silent = [m for _, m in samples(sub, "meter2") if t_off + 0.5 < m["ts"] / 1000 < t_on]
        self.assertEqual(silent, [])
        log = daemon.log()
        # Logged once per state change, not per poll.
        self.assertEqual(log.count("device meter2 (unit 2): no response (timeout)"), 1, log)
        self.assertEqual(log.count("device meter2 (unit 2): backing off"), 1, log)
        self.assertEqual(log.count("device meter2 (unit 2): responding again"), 1, log)
        self.assertRegex(log, r"device meter2: \d+ polls, \d+ ok, [1-9]\d* timeouts")
        self.assertNotIn("link down", log, "a silent unit is not a link failure, nor is the stop")

    def test_rtu_over_tcp_converter(self):
        procs = Procs(self)
        broker = Broker(procs)
        sub = Subscriber(procs, broker, ["fieldlink/#"])
        port = free_port()
        tty = tcp_to_pty(procs, port)
        Simulator(procs, rtu=tty, units=(4, 7))
        bus = f"    driver: modbus-rtu-over-tcp\n    host: 127.0.0.1\n    port: {port}\n    timeout: 300ms"
        daemon = Daemon(procs, config(broker.port, bus, (4, 7), interval="300ms"))
        wait_for(lambda: all(len(samples(sub, "meter%d" % u)) >= 3 for u in (4, 7)), timeout=30,
                 what="data from both units through the converter")
        rc, _ = daemon.stop()
        self.assertEqual(rc, 0)
        self.assertNotIn("link down", daemon.log())
        for u in (4, 7):
            self.check_values(sub, u)

    def test_line_utilisation_is_measured_and_rises_when_a_unit_stops_answering(self):
        procs = Procs(self)
        broker = Broker(procs)
        gw_side, dev_side = pty_pair(procs)
        sim = Simulator(procs, rtu=dev_side, units=(1, 2))
        http = free_port()
        bus = f"    driver: modbus-rtu\n    device: {gw_side}\n    baud: 9600\n    timeout: 150ms"
        text = "gateway: { http: 127.0.0.1:%d }\n" % http + config(broker.port, bus, (1, 2), interval="200ms")
        Daemon(procs, text)

        def line():
            status, body = http_get("http://127.0.0.1:%d/api/runtime" % http)
            return json.loads(body)["buses"][0] if status == 200 else None

        # The first figure comes after a window of 5 s.
        wait_for(lambda: line() and line()["utilisation"] > 0, timeout=20, what="a measured utilisation")
        answered = line()
        self.assertLessEqual(answered["utilisation"], 1.0)
        self.assertGreater(answered["busy_s"], 0)
        # Unit 2 goes silent: each of its polls now holds the line for its timeout (150 ms of every
        # 200 ms, and its retry), which the measurement shows, until backing off spaces them out.
        sim.cmd("off 2")
        time.sleep(0.5)
        busy_before = line()["busy_s"]
        time.sleep(1.0)
        busy_after = line()["busy_s"]
        self.assertGreater(busy_after - busy_before, 0.15, "a second with timeouts: the line was busy for them")
        wait_for(lambda: line()["utilisation"] > answered["utilisation"], timeout=15,
                 what="utilisation to rise with the timeouts")
        status, metrics = http_get("http://127.0.0.1:%d/metrics" % http)
        self.assertEqual(status, 200)
        self.assertRegex(metrics, r'fieldlink_bus_utilisation\{bus="line1"\} [0-9.]+')
        self.assertRegex(metrics, r'fieldlink_bus_busy_seconds_total\{bus="line1"\} [0-9.]+')


if __name__ == "__main__":
    unittest.main()
