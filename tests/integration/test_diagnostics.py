"""Remote diagnostics (issue 24, item 4) on the real binary: read-only requests from the platform.

Generic MQTT on a real mosquitto (diagnostics_topic), the devices the bundled simulator over Modbus
TCP:
- read_registers reads a raw range of a configured device's unit once (registers no point
  maps), and a range the unit refuses comes back as its Modbus exception; coils as 0/1;
- log returns the last warning lines (here: a unit that does not answer);
- bus_stats returns the bus and device figures;
- a bad request is refused with what was expected; nothing is ever written (the simulator's
  registers are unchanged).
OneNET thing model on the emulator: the service fieldlink_diagnostics answers on invoke_reply, and
a cloud without `diagnostics: true` refuses it."""
import json
import os
import subprocess
import unittest

from harness import Broker, Daemon, Procs, Simulator, Subscriber, free_port, wait_for

TOPIC = "site1/gw1/diag"


class DiagnosticsTest(unittest.TestCase):
    def setUp(self):
        self.procs = Procs(self)
        self.broker = Broker(self.procs)
        self.modbus_port = free_port()
        self.sim = Simulator(self.procs, tcp_port=self.modbus_port, units=[1])
        self.sim.cmd("set 1 holding 100 11 22 33 44 55")
        self.sim.cmd("set 1 coil 7 1 0 1")
        self.sim.cmd("fail 1 holding 200")
        self.replies = Subscriber(self.procs, self.broker, [TOPIC + "/reply"], name="replies.log")
        self.daemon = Daemon(self.procs, f"""gateway: {{ log_level: info }}
clouds:
  local: {{ platform: mqtt, host: 127.0.0.1, port: {self.broker.port}, diagnostics: true,
           diagnostics_topic: {TOPIC} }}
buses:
  plc: {{ driver: modbus-tcp, host: 127.0.0.1, port: {self.modbus_port}, timeout: 200ms }}
devices:
  - {{ name: pump, cloud: local, bus: plc, unit: 1, interval: 500ms,
       points: [ {{ name: a, area: holding, address: 0 }} ] }}
  - {{ name: ghost, cloud: local, bus: plc, unit: 9, interval: 500ms,
       points: [ {{ name: a, area: holding, address: 0 }} ] }}
""")
        wait_for(lambda: "%s (QoS" % TOPIC in self.broker.log(), timeout=15, what="the diagnostics subscription")

    def tearDown(self):
        self.procs.close()

    def ask(self, request_id, request):
        request = dict(request, id=request_id)
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.broker.port), "-q", "1", "-t", TOPIC,
                        "-s"], input=json.dumps(request).encode(), check=True, timeout=10)

        def find():
            for _, m in self.replies.json_messages(TOPIC + "/reply"):
                if m.get("id") == request_id:
                    return m
            return None
        wait_for(lambda: find() is not None, timeout=10, what="the answer to " + request_id)
        return find()

    def test_registers_log_and_bus_statistics_read_only(self):
        a = self.ask("1", {"request": "read_registers", "device": "pump", "area": "holding", "address": 100,
                           "count": 5})
        held = self.sim.get(1, "holding", 100, 5)  # (the simulator's own answer, independently)
        self.assertEqual(held, [11, 22, 33, 44, 55])
        self.assertEqual(a, {"id": "1", "ok": True, "result": {"device": "pump", "unit": 1, "area": "holding",
                                                               "address": 100, "count": 5, "values": held}})
        a = self.ask("2", {"request": "read_registers", "device": "pump", "area": "coil", "address": 7, "count": 3})
        self.assertEqual(a["result"]["values"], [1, 0, 1])
        a = self.ask("3", {"request": "read_registers", "device": "pump", "address": 200, "count": 2})
        self.assertFalse(a["ok"])
        self.assertIn("Modbus exception 2", a["error"])

        wait_for(lambda: "ghost" in self.daemon.log() and "no response" in self.daemon.log(), timeout=10,
                 what="the unit that does not answer to be logged")
        a = self.ask("4", {"request": "log", "lines": 5})
        self.assertTrue(a["ok"])
        self.assertTrue(0 < len(a["result"]["lines"]) <= 5)
        self.assertTrue(any("ghost" in line for line in a["result"]["lines"]), a)

        a = self.ask("5", {"request": "bus_stats"})
        self.assertTrue(a["ok"])
        bus = a["result"]["buses"][0]
        self.assertEqual(bus["name"], "plc")
        names = [d["name"] for d in bus["devices"]]
        self.assertEqual(sorted(names), ["ghost", "pump"])

        for rid, bad, expect in (
                ("6", {"request": "read_registers", "device": "nobody", "address": 0}, "no configured device"),
                ("7", {"request": "read_registers", "device": "pump", "address": 0, "count": 126},
                 "count: expected 1..125 registers"),
                ("8", {"request": "read_registers", "device": "pump", "area": "eeprom", "address": 0},
                 "expected holding, input, coil or discrete"),
                ("9", {"request": "write_registers", "device": "pump"}, "unknown request 'write_registers'")):
            a = self.ask(rid, bad)
            self.assertFalse(a["ok"], a)
            self.assertIn(expect, a["error"])
        self.assertEqual(self.sim.get(1, "holding", 100, 5), held)  # nothing was written
        self.assertNotIn("write from cloud", self.daemon.log())


class OnenetDiagnosticsTest(unittest.TestCase):
    PID, KEY = "IHL2T99b8k", "rs2FaE5BuygJZkWKDA5okKt1RFpwOx53hbu6hwyCS4U="

    def run_with(self, diagnostics):
        procs = Procs(self)
        self.addCleanup(procs.close)
        broker = Broker(procs, devices=[(self.PID, "gw01", self.KEY)], rate=5)
        modbus_port = free_port()
        sim = Simulator(procs, tcp_port=modbus_port, units=[1])
        sim.cmd("set 1 input 40 1234 5678")
        daemon = Daemon(procs, f"""gateway: {{ log_level: info }}
clouds:
  studio: {{ platform: onenet, protocol: thing-model, host: 127.0.0.1, port: {broker.port}, product_id: {self.PID},
            diagnostics: {str(diagnostics).lower()}, max_rate: 5 }}
buses:
  plc: {{ driver: modbus-tcp, host: 127.0.0.1, port: {modbus_port}, timeout: 300ms }}
devices:
  - {{ name: gw01, cloud: studio, bus: plc, unit: 1, gateway: true, key: {self.KEY}, interval: 1s,
       points: [ {{ name: uptime, area: holding, address: 3 }} ] }}
""")
        prefix = f"$sys/{self.PID}/gw01/thing/"
        wait_for(lambda: any(t.startswith(prefix) for _, t, _ in broker.received()), timeout=15,
                 what="the gateway's first message")
        broker.publish(prefix + "service/fieldlink_diagnostics/invoke", json.dumps(
            {"id": "77", "version": "1.0", "params": {"request": "read_registers", "device": "gw01",
                                                      "area": "input", "address": 40, "count": 2}}))

        def reply():
            for _, t, p in broker.received():
                if t == prefix + "service/fieldlink_diagnostics/invoke_reply":
                    return json.loads(p)
            return None
        wait_for(lambda: reply() is not None, timeout=10, what="the invoke_reply")
        self.assertEqual(broker.violation_lines(), [])
        return reply(), daemon

    def test_the_service_answers_when_enabled(self):
        reply, _ = self.run_with(True)
        self.assertEqual(reply["code"], 200)
        self.assertEqual(reply["data"]["values"], [1234, 5678])

    def test_the_service_is_refused_when_off(self):
        reply, daemon = self.run_with(False)
        self.assertEqual(reply["code"], 100)
        self.assertIn("diagnostics are off for cloud studio", reply["msg"])
        self.assertNotIn("diagnostics read", daemon.log())


if __name__ == "__main__":
    unittest.main()
