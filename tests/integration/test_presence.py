"""A device whose Modbus unit stops answering is shown offline on the platform, and online again
when it answers (issue 8, item 4): ThingsBoard v1/gateway/disconnect / connect, OneNET gateway
sub/logout / sub/login. Real Modbus TCP (the bundled simulator, whose units the test switches
off and on) and the real binary against the emulator."""
import json
import unittest

from harness import Broker, Daemon, Procs, Simulator, free_port, wait_for

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
        self.sim.cmd("on 2")
        wait_for(lambda: events(broker, kinds)[-1] == ("v1/gateway/connect", {"device": "b"}), timeout=20,
                 what="b connected again")
        self.assertEqual(daemon.stop()[0], 0)
        self.assertEqual([e for e in events(broker, kinds) if e[1]["device"] == "a"],
                         [("v1/gateway/connect", {"device": "a"})], "a kept answering: one connect, no disconnect")
        self.assertEqual(broker.violation_lines(), [])

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
