"""fieldlinkd polls a Modbus TCP server and publishes OneNET datapoints to a broker that enforces
OneNET's rules (token, clean session, no will, keepalive, own topics, 1 message/s)."""
import re
import struct
import time
import unittest

from harness import Broker, Daemon, Procs, Simulator, Subscriber, free_port, wait_for

PID = "469948"
DEVICE_KEY = "rs2FaE5BuygJZkWKDA5okKt1RFpwOx53hbu6hwyCS4U="
PRODUCT_KEY = "kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI="
WRONG_KEY = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


def words(fmt, value, order="abcd"):
    """Register words for `value` packed big-endian, then rearranged by the libmodbus order name."""
    raw = struct.pack(">" + fmt, value)
    w = [raw[i:i + 2] for i in range(0, len(raw), 2)]
    if order in ("cdab", "dcba"):
        w.reverse()
    if order in ("badc", "dcba"):
        w = [x[::-1] for x in w]
    return [int.from_bytes(x, "big") for x in w]


# (point yaml, simulator set command, expected published value)
POINTS = [
    ("{ name: temp, area: holding, address: 10, type: float32, order: abcd }", ("holding", 10, words("f", 21.5)), 21.5),
    ("{ name: flow, area: holding, address: 20, type: float32, order: cdab }", ("holding", 20, words("f", -123.5, "cdab")), -123.5),
    ("{ name: level, area: holding, address: 30, type: int16 }", ("holding", 30, [65534]), -2),
    ("{ name: volts, area: holding, address: 31, type: uint16, scale: 0.1, offset: -1 }", ("holding", 31, [2305]), 229.5),
    ("{ name: energy, area: holding, address: 40, type: uint64, order: dcba }", ("holding", 40, words("Q", 12345678901234, "dcba")), 12345678901234),
    ("{ name: tag, area: holding, address: 50, type: string, length: 3 }", ("holding", 50, [0x5055, 0x4D50, 0x2D37]), "PUMP-7"),
    ("{ name: hours, area: holding, address: 60, type: bcd }", ("holding", 60, [0x1234]), 1234),
    ("{ name: power, area: input, address: 5, type: int32, order: badc }", ("input", 5, words("i", -70000, "badc")), -70000),
    ("{ name: total, area: holding, address: 80, type: float64 }", ("holding", 80, words("d", 1234.5678)), 1234.5678),
    ("{ name: alarm, area: holding, address: 70, type: bool, bit: 3 }", ("holding", 70, [0x0008]), True),
    ("{ name: relay, area: coil, address: 3, writable: true }", ("coil", 3, [1]), True),
    ("{ name: door, area: discrete, address: 4 }", ("discrete", 4, [0]), False),
]


def config(broker_port, modbus_port):
    points = "\n".join("      - " + p[0] for p in POINTS)
    return f"""
gateway:
  log_level: info
clouds:
  onenet:
    platform: onenet
    protocol: datapoints
    host: 127.0.0.1
    port: {broker_port}
    product_id: "{PID}"
    product_key: {PRODUCT_KEY}
    token_method: sha1
    keepalive: 60s
buses:
  plc:
    driver: modbus-tcp
    host: 127.0.0.1
    port: {modbus_port}
    timeout: 500ms
devices:
  - name: Chic_D
    cloud: onenet
    bus: plc
    unit: 1
    key: {DEVICE_KEY}
    interval: 400ms
    points:
{points}
      - {{ name: counter, area: holding, address: 0, type: uint32 }}
  - name: Chic_E
    cloud: onenet
    bus: plc
    unit: 2
    interval: 1s
    points:
      - {{ name: reg7, area: holding, address: 7 }}
  - name: Bad_D
    cloud: onenet
    bus: plc
    unit: 2
    key: {WRONG_KEY}
    interval: 1s
    points:
      - {{ name: reg7, area: holding, address: 7 }}
"""


class OnenetTcpTest(unittest.TestCase):
    def test_datapoints_over_modbus_tcp(self):
        procs = Procs(self)
        broker = Broker(procs, devices=[(PID, "Chic_D", DEVICE_KEY), (PID, "*", PRODUCT_KEY)], rate=1.0)
        sub = Subscriber(procs, broker, ["$sys/#"])
        modbus_port = free_port()
        sim = Simulator(procs, tcp_port=modbus_port, units=(1, 2))
        for _, (area, addr, ws), _ in POINTS:
            sim.cmd("set 1 %s %d %s" % (area, addr, " ".join(map(str, ws))))

        t_start = time.time()
        daemon = Daemon(procs, config(broker.port, modbus_port))
        topic = "$sys/%s/Chic_D/dp/post/json" % PID
        wait_for(lambda: len(sub.json_messages(topic)) >= 5, timeout=30, what="five Chic_D messages")
        wait_for(lambda: sub.json_messages("$sys/%s/Chic_E/dp/post/json" % PID), timeout=10, what="Chic_E data")
        rc, seconds = daemon.stop()
        t_end = time.time()
        self.assertEqual(rc, 0, daemon.log())
        self.assertLess(seconds, 3.0, "SIGTERM should stop fieldlinkd promptly (took %.2fs)" % seconds)
        self.assertNotIn("link down", daemon.log(), "a stop that interrupts a read is not a failure of the link")

        msgs = sub.json_messages(topic)
        ids = [m["id"] for _, m in msgs]
        self.assertEqual(ids, sorted(ids))
        self.assertTrue(all(isinstance(i, int) and i > 0 for i in ids))
        counters = []
        for _, m in msgs:
            dp = m["dp"]
            for (yaml, _, expected) in POINTS:
                name = re.search(r"name: (\w+)", yaml).group(1)
                self.assertIn(name, dp, m)
                for sample in dp[name]:
                    if isinstance(expected, float):
                        self.assertAlmostEqual(sample["v"], expected, places=6, msg=name)
                    else:
                        self.assertEqual(sample["v"], expected, name)
                    self.assertGreaterEqual(sample["t"], int(t_start) - 1)
                    self.assertLessEqual(sample["t"], int(t_end) + 1)
            counters += [s["v"] for s in dp["counter"]]
        self.assertEqual(counters, sorted(counters), "samples must arrive in acquisition order")
        self.assertGreater(counters[-1], counters[0])

        # Chic_E logged in with a token signed by the product key; its register is unit 2's pattern.
        e = sub.json_messages("$sys/%s/Chic_E/dp/post/json" % PID)
        self.assertEqual(e[0][1]["dp"]["reg7"][0]["v"], 207)

        # OneNET's CONNECT rules, as the broker saw them.
        log = broker.log()
        self.assertRegex(log, r"as Chic_D \(p2, c1, k60, u'%s'\)" % PID)
        self.assertRegex(log, r"as Chic_E \(p2, c1, k60, u'%s'\)" % PID)
        self.assertNotIn("Will message specified", log)
        violations = broker.violation_lines()
        self.assertTrue(all(v.startswith("Bad_D: auth refused: 1106 sign mismatch") for v in violations), violations)
        self.assertTrue(violations, "the wrong key must be refused by the broker")
        self.assertIn("device Bad_D: cloud onenet refused the connection: not authorised (check the product id, device name, key and token method) (CONNACK 5)", daemon.log())
        # Refused on every attempt (the broker saw several), logged once for the streak.
        self.assertGreater(len(violations), 1, violations)
        self.assertEqual(daemon.log().count("device Bad_D: cloud onenet refused the connection"), 1)
        self.assertNotIn(WRONG_KEY, daemon.log(), "secrets never appear in logs")
        self.assertNotIn(DEVICE_KEY, daemon.log(), "secrets never appear in logs")


if __name__ == "__main__":
    unittest.main()
