"""A device whose Modbus unit stops answering is shown offline on the platform, and online again
when it answers (issue 8, item 4; issue 24, item 2): ThingsBoard v1/gateway/disconnect / connect
with the reason as the client attribute offline_reason, OneNET gateway sub/logout / sub/login,
generic MQTT a retained status topic with the reason. Real Modbus TCP (the bundled simulator,
whose units the test switches off and on) and the real binary against the emulator or mosquitto.
"Within two poll cycles" is counted in cycles, not seconds: the samples of the neighbour that
keeps answering on the same bus, published between the change and the platform's news of it."""
import json
import unittest

from harness import Broker, Daemon, Procs, Simulator, Subscriber, free_port, wait_for

GW_PID, GW_KEY = "IHL2T99b8k", "rs2FaE5BuygJZkWKDA5okKt1RFpwOx53hbu6hwyCS4U="
SUB_PID, SUB_PRODUCT_KEY = "SubPid01", "kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI="


def events(broker, kinds):
    """[(topic, payload json)] of the device's publishes on the given topic suffixes, in order."""
    out = []
    for _, topic, payload in broker.received():
        if topic.endswith(kinds):
            out.append((topic, json.loads(payload)))
    return out


class PresenceTest(unittest.TestCase):
    def devices(self, cloud, extra=""):
        return f"""
buses:
  plc: {{ driver: modbus-tcp, host: 127.0.0.1, port: {self.modbus_port}, timeout: 300ms, retries: 0 }}
devices:{extra}
  - {{ name: a, cloud: {cloud}, bus: plc, unit: 1, interval: 500ms, points: [ {{ name: v, area: holding, address: 0 }} ] }}
  - {{ name: b, cloud: {cloud}, bus: plc, unit: 2, interval: 500ms, points: [ {{ name: v, area: holding, address: 0 }} ] }}
"""

    def setUp(self):
        self.procs = Procs(self)
        self.modbus_port = free_port()
        self.sim = Simulator(self.procs, tcp_port=self.modbus_port, units=(1, 2, 100))

    def test_thingsboard_disconnects_and_connects_the_device(self):
        broker = Broker(self.procs, devices=[("-", "-", "TOKEN")], platform="thingsboard", rate=5)
        daemon = Daemon(self.procs, f"""
clouds:
  tb: {{ platform: thingsboard, host: 127.0.0.1, port: {broker.port}, username: TOKEN, max_rate: 5 }}
""" + self.devices("tb"))
        kinds = ("v1/gateway/connect", "v1/gateway/disconnect")
        wait_for(lambda: len(events(broker, kinds)) == 2, timeout=20, what="both devices connected")
        self.sim.cmd("off 2")
        wait_for(lambda: events(broker, kinds)[-1] == ("v1/gateway/disconnect", {"device": "b"}), timeout=20,
                 what="b disconnected on the platform")
        why = [m["b"]["offline_reason"] for _, m in events(broker, ("v1/gateway/attributes",)) if "b" in m]
        self.assertRegex(why[-1], r"^no response \(timeout\)", "the reason, before the disconnect")
        self.sim.cmd("on 2")
        wait_for(lambda: events(broker, kinds)[-1] == ("v1/gateway/connect", {"device": "b"}), timeout=20,
                 what="b connected again")
        self.assertEqual(daemon.stop()[0], 0)
        self.assertEqual([e for e in events(broker, kinds) if e[1]["device"] == "a"],
                         [("v1/gateway/connect", {"device": "a"})], "a kept answering: one connect, no disconnect")
        self.assertEqual(broker.violation_lines(), [])

    def test_generic_mqtt_retained_status_with_the_reason_within_two_cycles(self):
        broker = Broker(self.procs)
        sub = Subscriber(self.procs, broker, ["fl/+/status", "fieldlink/a"], name="status.log")
        text = f"""
clouds:
  local: {{ platform: mqtt, host: 127.0.0.1, port: {broker.port}, status_topic: "fl/{{device}}/status" }}
""" + self.devices("local")
        text = text.replace("retries: 0 }", "retries: 0, backoff_max: 1s }")
        daemon = Daemon(self.procs, text)

        def stream():
            """(topic, payload) in arrival order."""
            return [(t, json.loads(p)) for _, t, p in sub.messages()]

        def statuses(device):
            return [m for t, m in stream() if t == "fl/%s/status" % device]

        def cycles_until(change, device, online):
            """Samples of a (polled every 500 ms on the same bus) between `change` messages into the
            stream and device's status saying `online`."""
            out = 0
            for t, m in stream()[change:]:
                if t == "fieldlink/a":
                    out += 1
                elif t == "fl/%s/status" % device and m["online"] is online:
                    return out
            return None

        wait_for(lambda: len(statuses("a")) == 1 and len(statuses("b")) == 1, timeout=20, what="both online")
        self.assertTrue(statuses("b")[0]["online"])
        wait_for(lambda: len([t for t, _ in stream() if t == "fieldlink/a"]) >= 2, what="a's data")
        mark = len(stream())
        self.sim.cmd("off 2")
        wait_for(lambda: cycles_until(mark, "b", False) is not None, timeout=20, what="b offline")
        down = statuses("b")[-1]
        self.assertRegex(down["reason"], r"^no response \(timeout\)")
        # Two cycles, and the one in progress when the unit went off.
        self.assertLessEqual(cycles_until(mark, "b", False), 3)
        late = Subscriber(self.procs, broker, ["fl/b/status"], name="late.log")  # retained for late comers
        wait_for(lambda: late.messages(), what="the retained status")
        self.assertEqual(json.loads(late.messages()[0][2]), down)

        mark = len(stream())
        self.sim.cmd("on 2")
        wait_for(lambda: cycles_until(mark, "b", True) is not None, timeout=20, what="b online again")
        self.assertLessEqual(cycles_until(mark, "b", True), 3)  # backoff_max 1s: the next probe finds it
        self.assertNotIn("reason", statuses("b")[-1])
        self.assertEqual([m["online"] for m in statuses("a")], [True], "a kept answering")

        # A restart while b is off: online (not known otherwise yet) until its first poll fails,
        # then offline with the reason.
        self.sim.cmd("off 2")
        wait_for(lambda: not statuses("b")[-1]["online"], timeout=20, what="b offline again")
        self.assertEqual(daemon.stop()[0], 0)
        mark = len(statuses("b"))
        daemon = Daemon(self.procs, text, name="fieldlinkd-2.log")
        wait_for(lambda: any(not m["online"] for m in statuses("b")[mark:]), timeout=20, what="b offline after start")
        self.assertIn([m["online"] for m in statuses("b")[mark:]], ([False], [True, False]))
        self.assertRegex(statuses("b")[-1]["reason"], r"^no response \(timeout\)")
        self.assertEqual(daemon.stop()[0], 0)

    def test_onenet_gateway_logs_the_sub_device_out_and_in(self):
        broker = Broker(self.procs, devices=[(GW_PID, "gw01", GW_KEY), (SUB_PID, "*", SUB_PRODUCT_KEY)], rate=5)
        gw = f"""
  - {{ name: gw01, cloud: studio, bus: plc, unit: 100, gateway: true, key: {GW_KEY}, interval: 1s,
       points: [ {{ name: v, area: holding, address: 0 }} ] }}"""
        text = f"""
clouds:
  studio: {{ platform: onenet, protocol: thing-model, host: 127.0.0.1, port: {broker.port}, product_id: {GW_PID},
            max_rate: 5 }}
""" + self.devices("studio", gw).replace("interval: 500ms,", f"interval: 500ms, via: gw01, product_id: {SUB_PID}, "
                                                             f"product_key: {SUB_PRODUCT_KEY},")
        daemon = Daemon(self.procs, text)
        kinds = ("/sub/login", "/sub/logout")
        who = lambda: [(t.rsplit("/", 1)[1], m["params"]["deviceName"]) for t, m in events(broker, kinds)]
        wait_for(lambda: len(who()) == 2, timeout=30, what="both sub-devices logged in")
        self.sim.cmd("off 2")
        wait_for(lambda: who()[-1] == ("logout", "b"), timeout=20, what="b logged out")
        self.sim.cmd("on 2")
        wait_for(lambda: who()[-1] == ("login", "b"), timeout=20, what="b logged in again")
        self.assertEqual(daemon.stop()[0], 0)
        self.assertEqual([w for w in who() if w[1] == "a"], [("login", "a")])
        self.assertEqual(broker.violation_lines(), [])


if __name__ == "__main__":
    unittest.main()
