"""A reload restarts only what changed (issue 10, item 6), on the real binary with a real broker
and two real Modbus TCP servers (the bundled simulator): two buses, four devices, one MQTT
session each.

Counted from outside the daemon: MQTT connections per client id in the broker's log, TCP
connections accepted by each Modbus server, and each device's poll counter on /api/runtime.
- one device's interval changed: its session reconnects; the other three sessions stay
  connected, neither Modbus link is reopened, and the other devices' poll counters go on from
  where they were (a restarted worker would count from 0);
- one bus's timeout changed: that bus's link is reopened, no MQTT session reconnects;
- a device added and one removed: the new one publishes, the removed one's session leaves,
  nothing else reconnects;
- an unchanged file: nothing reconnects at all. A write after the reloads is carried out.
On the OneNET emulator (thing model, a gateway with two sub-devices and a direct device), which
enforces the platform's rules (token, login rate, topic ACL): a change to the direct device leaves
the gateway's session alone, a change to a sub-device reconnects the gateway (its topology) and
leaves the direct device alone, and no rule is broken.
"""
import json
import re
import signal
import time
import unittest
import urllib.request

from harness import Broker, Daemon, Procs, Simulator, Subscriber, free_port, wait_for


def get_json(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read().decode())


GW_PID, KEY = "IHL2T99b8k", "rs2FaE5BuygJZkWKDA5okKt1RFpwOx53hbu6hwyCS4U="
SUB_PID, SUB_PRODUCT_KEY = "SubPid01", "kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI="


def connects(broker):
    """MQTT connections per client id, from the broker's log."""
    counts = {}
    for m in re.finditer(r"New client connected from \S+ as (\S+) ", broker.log()):
        counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


class ReloadTest(unittest.TestCase):
    def config(self, d2_interval="200ms", b_timeout="500ms", with_d4=False, without_d3=False):
        devices = [("d1", "a", 1, "200ms"), ("d2", "a", 2, d2_interval), ("d3", "b", 1, "200ms"),
                   ("d5", "b", 2, "200ms")]
        if without_d3:
            devices = [d for d in devices if d[0] != "d3"]
        if with_d4:
            devices.append(("d4", "a", 3, "200ms"))
        text = f"""
gateway:
  http: 127.0.0.1:{self.http_port}
clouds:
  c: {{ platform: mqtt, host: 127.0.0.1, port: {self.broker.port}, topic: "fl/{{device}}",
        command_topic: "fl/{{device}}/set/{{point}}" }}
buses:
  a: {{ driver: modbus-tcp, host: 127.0.0.1, port: {self.port_a}, timeout: 500ms }}
  b: {{ driver: modbus-tcp, host: 127.0.0.1, port: {self.port_b}, timeout: {b_timeout} }}
devices:
"""
        for name, bus, unit, interval in devices:
            text += (f"  - {{ name: {name}, cloud: c, bus: {bus}, unit: {unit}, interval: {interval}, points: "
                     "[{ name: v, area: holding, address: 0 }, { name: sp, area: holding, address: 20, "
                     "writable: true }] }\n")
        return text

    def connects(self):
        return connects(self.broker)

    def modbus_links(self):
        return tuple(int(s.cmd("stats").split()[3]) for s in (self.sim_a, self.sim_b))

    def polls(self):
        runtime = get_json("http://127.0.0.1:%d/api/runtime" % self.http_port)
        return {d["name"]: d["polls"] for b in runtime["buses"] for d in b["devices"]}

    def reload(self, text, n):
        self.daemon.rewrite_config(text)
        self.daemon.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: self.daemon.log().count("SIGHUP: reloaded") >= n, timeout=15, what="reload %d" % n)
        wait_for(lambda: self.polls_or_none() is not None, timeout=10, what="the HTTP server after reload %d" % n)

    def polls_or_none(self):
        try:
            return self.polls()
        except OSError:
            return None

    def settled(self, sessions):
        wait_for(lambda: set(sessions) <= set(self.connects()), timeout=15, what="sessions %s" % sessions)
        wait_for(lambda: all(p >= 2 for p in self.polls().values()), timeout=15, what="every device polled")

    def test_only_what_changed_restarts(self):
        procs = Procs(self)
        self.broker = Broker(procs)
        self.port_a, self.port_b, self.http_port = free_port(), free_port(), free_port()
        self.sim_a = Simulator(procs, tcp_port=self.port_a, units=(1, 2, 3), name="sim-a.log")
        self.sim_b = Simulator(procs, tcp_port=self.port_b, units=(1, 2), name="sim-b.log")
        data = Subscriber(procs, self.broker, ["fl/+"])
        self.daemon = Daemon(procs, self.config())
        wait_for(lambda: "metrics, health and status page on" in self.daemon.log(), timeout=15, what="HTTP")
        self.settled(["d1", "d2", "d3", "d5"])
        self.assertEqual(self.modbus_links(), (1, 1))
        before_conn, before_polls = self.connects(), self.polls()

        # 1. One device's interval: only its session reconnects; no link, no other poll counter restarts.
        self.reload(self.config(d2_interval="300ms"), 1)
        wait_for(lambda: self.connects().get("d2", 0) == before_conn["d2"] + 1, timeout=15, what="d2 reconnected")
        after = self.polls()
        for name in ("d1", "d3", "d5"):
            self.assertGreaterEqual(after[name], before_polls[name], "%s's poll counter restarted" % name)
        wait_for(lambda: self.polls()["d1"] > after["d1"] and self.polls()["d3"] > after["d3"], timeout=10,
                 what="polls going on after the reload")
        time.sleep(1.0)  # room for a wrong reconnect to show
        conn = self.connects()
        self.assertEqual({k: conn[k] for k in ("d1", "d3", "d5")}, {k: before_conn[k] for k in ("d1", "d3", "d5")})
        self.assertEqual(self.modbus_links(), (1, 1))
        self.assertIn("SIGHUP: reloaded: 3 session(s) kept connected, 1 stopped, 1 started; 2 bus worker(s) kept, "
                      "0 started", self.daemon.log())

        # 2. One bus's timeout: that bus's link is reopened, every session stays.
        conn = self.connects()
        self.reload(self.config(d2_interval="300ms", b_timeout="700ms"), 2)
        wait_for(lambda: self.modbus_links() == (1, 2), timeout=10, what="bus b's link reopened")
        wait_for(lambda: self.polls()["d3"] >= 2, timeout=10, what="bus b polled by its new worker")
        time.sleep(1.0)
        self.assertEqual(self.connects(), conn)
        self.assertIn("4 session(s) kept connected, 0 stopped, 0 started; 1 bus worker(s) kept, 1 started",
                      self.daemon.log())

        # 3. d4 added on bus a, d3 removed from bus b.
        conn = self.connects()
        self.reload(self.config(d2_interval="300ms", b_timeout="700ms", with_d4=True, without_d3=True), 3)
        wait_for(lambda: "fl/d4" in {t for _, t, _ in data.messages()}, timeout=15, what="d4's data")
        wait_for(lambda: "Client d3 disconnected" in self.broker.log(), timeout=10, what="d3's session closed")
        time.sleep(1.0)
        now = self.connects()
        self.assertEqual({k: now[k] for k in ("d1", "d2", "d5")}, {k: conn[k] for k in ("d1", "d2", "d5")})
        self.assertEqual(self.modbus_links(), (1, 2))
        self.assertEqual(set(self.polls()), {"d1", "d2", "d4", "d5"})
        t_removed = time.time()

        # 4. The same file again: nothing at all restarts.
        conn = self.connects()
        self.reload(self.config(d2_interval="300ms", b_timeout="700ms", with_d4=True, without_d3=True), 4)
        time.sleep(1.0)
        self.assertEqual(self.connects(), conn)
        self.assertEqual(self.modbus_links(), (1, 2))
        self.assertIn("4 session(s) kept connected, 0 stopped, 0 started; 2 bus worker(s) kept, 0 started",
                      self.daemon.log())
        self.assertFalse([t for t, topic, _ in data.messages() if topic == "fl/d3" and t > t_removed + 0.5])

        # A write after the reloads reaches the device on its kept bus and is answered.
        replies = Subscriber(procs, self.broker, ["fl/+/set/+/reply"], name="replies.log")
        self.broker.publish("fl/d2/set/sp", "42")
        wait_for(lambda: replies.messages(), timeout=10, what="the write's reply")
        self.assertEqual(json.loads(replies.messages()[0][2]), {"success": True, "values": {"sp": 42}})
        self.assertEqual(self.sim_a.get(2, "holding", 20), [42])
        self.assertEqual(self.daemon.stop()[0], 0)

    def test_onenet_gateway_and_direct_device(self):
        procs = Procs(self)
        broker = Broker(procs, devices=[(GW_PID, "gw01", KEY), (GW_PID, "m1", KEY), (SUB_PID, "*", SUB_PRODUCT_KEY)],
                        rate=5)
        port = free_port()
        Simulator(procs, tcp_port=port, units=(1, 2, 3, 100))

        def config(m1="1s", b="1s"):
            dev = "points: [{ name: v, area: holding, address: 0 }] }\n"
            sub = f"via: gw01, product_id: {SUB_PID}, product_key: {SUB_PRODUCT_KEY}, "
            return f"""
clouds:
  studio: {{ platform: onenet, protocol: thing-model, host: 127.0.0.1, port: {broker.port}, product_id: {GW_PID},
            max_rate: 5 }}
buses:
  plc: {{ driver: modbus-tcp, host: 127.0.0.1, port: {port}, timeout: 500ms }}
devices:
  - {{ name: gw01, cloud: studio, bus: plc, unit: 100, gateway: true, key: {KEY}, interval: 1s, """ + dev + f"""\
  - {{ name: a, cloud: studio, bus: plc, unit: 1, interval: 1s, {sub}""" + dev + f"""\
  - {{ name: b, cloud: studio, bus: plc, unit: 2, interval: {b}, {sub}""" + dev + f"""\
  - {{ name: m1, cloud: studio, bus: plc, unit: 3, key: {KEY}, interval: {m1}, """ + dev

        daemon = Daemon(procs, config())
        wait_for(lambda: {"gw01", "m1"} <= set(connects(broker)), timeout=20, what="both sessions")
        wait_for(lambda: len([r for r in broker.received() if r[1].endswith("/sub/login")]) >= 2, timeout=20,
                 what="both sub-devices logged in")
        before = connects(broker)

        def reload(text, n):
            daemon.rewrite_config(text)
            daemon.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: daemon.log().count("SIGHUP: reloaded") >= n, timeout=15, what="reload %d" % n)

        reload(config(m1="2s"), 1)
        wait_for(lambda: connects(broker).get("m1") == before["m1"] + 1, timeout=20, what="m1 reconnected")
        time.sleep(1.0)
        self.assertEqual(connects(broker)["gw01"], before["gw01"])
        self.assertIn("1 session(s) kept connected, 1 stopped, 1 started", daemon.log())

        reload(config(m1="2s", b="2s"), 2)
        wait_for(lambda: connects(broker).get("gw01") == before["gw01"] + 1, timeout=20, what="gw01 reconnected")
        wait_for(lambda: len([r for r in broker.received() if r[1].endswith("/sub/login")]) >= 4, timeout=20,
                 what="the sub-devices logged in again")
        time.sleep(1.0)
        self.assertEqual(connects(broker)["m1"], before["m1"] + 1)
        self.assertEqual(daemon.stop()[0], 0)
        self.assertEqual(broker.violation_lines(), [])


if __name__ == "__main__":
    unittest.main()
