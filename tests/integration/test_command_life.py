"""Commands with a lifetime (issue 24, item 3) on the real binary: generic MQTT on a real
mosquitto, the device the bundled simulator over Modbus TCP.

- A write held behind an outage expires: the gateway is down while the platform's command waits
  on the broker (retained, with its request time "ts"); when the gateway is back and the command
  reaches it older than command_ttl, it is answered as expired and the register is not touched.
- Fresh commands (with and without "ts") are written and read back.
- The audit log (data_dir/audit.log) holds every write, refusal and expiry, with who asked and
  the result, including those of the process before the restart."""
import json
import subprocess
import time
import unittest

from harness import Broker, Daemon, Procs, Simulator, Subscriber, free_port, wait_for

TTL_S = 3


class CommandLifeTest(unittest.TestCase):
    def setUp(self):
        self.procs = Procs(self)
        self.broker = Broker(self.procs)
        modbus_port = free_port()
        self.sim = Simulator(self.procs, tcp_port=modbus_port, units=[1])
        self.config = f"""
gateway: {{ log_level: info }}
clouds:
  local: {{ platform: mqtt, host: 127.0.0.1, port: {self.broker.port}, command_topic: "fl/{{device}}/set",
           command_ttl: {TTL_S}s }}
buses:
  plc: {{ driver: modbus-tcp, host: 127.0.0.1, port: {modbus_port}, timeout: 300ms }}
devices:
  - name: pump
    cloud: local
    bus: plc
    unit: 1
    interval: 1s
    points:
      - {{ name: sp, area: holding, address: 10, writable: true, max: 1000 }}
"""
        self.replies = Subscriber(self.procs, self.broker, ["fl/pump/set/reply"], name="replies.log")

    def tearDown(self):
        self.procs.close()

    def start_daemon(self, name):
        daemon = Daemon(self.procs, self.config, name=name)
        wait_for(lambda: self.broker.log().count("fl/pump/set (QoS") > self.subscriptions, timeout=15,
                 what="the gateway subscribed")
        self.subscriptions += 1
        return daemon

    def reply(self, request_id, timeout=10):
        def find():
            for _, m in self.replies.json_messages("fl/pump/set/reply"):
                if m.get("id") == request_id:
                    return m
            return None
        wait_for(lambda: find() is not None, timeout=timeout, what="the reply to request " + request_id)
        return find()

    def publish(self, payload, retain=False):
        args = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.broker.port), "-q", "1", "-t", "fl/pump/set",
                "-s" if payload else "-n"] + (["-r"] if retain else [])
        subprocess.run(args, input=payload.encode(), check=True, timeout=10)

    def test_a_write_held_behind_an_outage_expires_and_the_audit_log_keeps_everything(self):
        self.subscriptions = 0
        daemon = self.start_daemon("fieldlinkd-1.log")
        self.publish(json.dumps({"id": "1", "ts": int(time.time() * 1000), "sp": 11}))
        self.assertEqual(self.reply("1"), {"id": "1", "success": True, "values": {"sp": 11}})
        self.assertEqual(self.sim.get(1, "holding", 10), [11])
        self.assertEqual(daemon.stop()[0], 0)

        # The outage: the platform's command waits on the broker, older than command_ttl when the
        # gateway is back.
        issued = int(time.time() * 1000)
        self.publish(json.dumps({"id": "2", "ts": issued, "sp": 22}), retain=True)
        time.sleep(TTL_S + 1)
        daemon = self.start_daemon("fieldlinkd-2.log")
        expired = self.reply("2")
        self.publish("", retain=True)  # the platform takes its command back
        self.assertFalse(expired["success"])
        self.assertRegex(expired["error"], r"^expired: the command was [4-9]\.\d s old when it arrived "
                                           r"\(command_ttl 3\.0 s\); nothing was written$")
        time.sleep(0.5)
        self.assertEqual(self.sim.get(1, "holding", 10), [11], "the expired command must not reach the device")

        self.publish(json.dumps({"id": "3", "sp": 33}))  # no request time: its age counts from arrival
        self.assertTrue(self.reply("3")["success"])
        self.publish(json.dumps({"id": "4", "sp": 5000}))  # above max: refused before the bus
        self.assertFalse(self.reply("4")["success"])
        self.assertEqual(self.sim.get(1, "holding", 10), [33])
        self.assertEqual(daemon.stop()[0], 0)

        with open(daemon.data_dir + "/audit.log") as f:
            audit = [json.loads(line) for line in f]
        self.assertEqual([(a["from"], a["result"]) for a in audit],
                         [("command id 1", "done"), ("command id 2", "expired"), ("command id 3", "done"),
                          ("command", "refused")])
        for a in audit:
            self.assertEqual((a["cloud"], a["device"]), ("local", "pump"))
        self.assertEqual(audit[0]["asked"], {"sp": 11})
        self.assertEqual(audit[0]["read_back"], {"sp": 11})
        self.assertEqual(audit[1]["requested"], issued)
        self.assertTrue(audit[1]["reason"].startswith("expired: "))
        self.assertNotIn("requested", audit[2])
        self.assertIn("5000", audit[3]["text"])
        self.assertIn("out of range", audit[3]["reason"])
        self.assertTrue(all(a["ts"] >= audit[0]["ts"] for a in audit))


if __name__ == "__main__":
    unittest.main()
