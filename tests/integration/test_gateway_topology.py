"""A OneNET gateway's sub-devices handled like the platform's own SDK (issue 8, item 4), on the real
binary against the emulator, which keeps the topology across sessions and flags a topo/add of a
sub-device already in it:

- first start: topo/get finds nothing, every sub-device is added, and each logs in only after its
  topo/add reply;
- a restart: topo/get finds them all, nothing is added again, and live data goes before the
  twenty logins are through (counted in messages, not seconds: the rate is the default 1/s);
- a topology change on the platform that drops a sub-device: it is added again."""
import json
import unittest

from harness import Broker, Daemon, Procs, wait_for

GW_PID, GW_KEY = "IHL2T99b8k", "rs2FaE5BuygJZkWKDA5okKt1RFpwOx53hbu6hwyCS4U="
SUB_PID, SUB_PRODUCT_KEY = "SubPid01", "kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI="
SUBS = 20
PREFIX = f"$sys/{GW_PID}/gw01/thing/"


def config(port):
    subs = "".join(f"""
  - {{ name: meter-{i:02d}, cloud: studio, bus: sim, unit: {i}, via: gw01, product_id: {SUB_PID},
       product_key: {SUB_PRODUCT_KEY}, interval: 1s, points: [ {{ name: Ua, area: holding, address: 0 }} ] }}"""
                   for i in range(1, SUBS + 1))
    return f"""
clouds:
  studio: {{ platform: onenet, protocol: thing-model, host: 127.0.0.1, port: {port}, product_id: {GW_PID} }}
buses:
  sim: {{ driver: sim }}
devices:
  - {{ name: gw01, cloud: studio, bus: sim, unit: 100, gateway: true, key: {GW_KEY}, interval: 1s,
       points: [ {{ name: uptime, area: holding, address: 3 }} ] }}
{subs}"""


def uplink(broker, since=0):
    """[(suffix, payload json)] the gateway sent, in order, from message number `since`."""
    out = []
    for _, topic, payload in broker.received()[since:]:
        if topic.startswith(PREFIX):
            out.append((topic[len(PREFIX):], json.loads(payload)))
    return out


def data(msgs):
    return [m for s, m in msgs if s in ("pack/post", "history/post", "property/post")]


class GatewayTopologyTest(unittest.TestCase):
    def test_topology_is_read_added_where_missing_and_kept(self):
        procs = Procs(self)
        broker = Broker(procs, devices=[(GW_PID, "gw01", GW_KEY), (SUB_PID, "*", SUB_PRODUCT_KEY)])
        daemon = Daemon(procs, config(broker.port))

        # First start: an empty topology, so every sub-device is added, then logs in.
        wait_for(lambda: sum(1 for s, _ in uplink(broker) if s == "sub/login") == SUBS, timeout=120,
                 what="every sub-device logged in")
        first = uplink(broker)
        self.assertEqual(first[0][0], "sub/topo/get")
        adds = [m["params"]["deviceName"] for s, m in first if s == "sub/topo/add"]
        self.assertEqual(sorted(adds), ["meter-%02d" % i for i in range(1, SUBS + 1)])
        for i, (s, m) in enumerate(first):
            if s == "sub/login":  # only after its own topo/add was sent (and answered, see the emulator)
                name = m["params"]["deviceName"]
                self.assertIn(("sub/topo/add", name), [(t, x["params"]["deviceName"]) for t, x in first[:i]
                                                        if t == "sub/topo/add"])
        # No data before the whole topology is in place.
        first_data = next(i for i, (s, _) in enumerate(first) if s in ("pack/post", "history/post"))
        self.assertGreater(first_data, max(i for i, (s, _) in enumerate(first) if s == "sub/topo/add"))
        self.assertEqual(daemon.stop()[0], 0)

        # A restart: the platform still has the topology; nothing is added, data goes early.
        mark = len(broker.received())
        again = Daemon(procs, config(broker.port), name="fieldlinkd-2.log")
        wait_for(lambda: sum(1 for s, _ in uplink(broker, mark) if s == "sub/login") == SUBS, timeout=120,
                 what="every sub-device logged in again")
        second = uplink(broker, mark)
        self.assertEqual(second[0][0], "sub/topo/get")
        self.assertIn("sub/topo/get/result", [s for s, _ in second[:3]])
        self.assertNotIn("sub/topo/add", [s for s, _ in second])
        first_data = next(i for i, (s, _) in enumerate(second) if s in ("pack/post", "history/post"))
        self.assertLessEqual(first_data, 3, "live data goes after the topology is read, between the logins")

        # The platform drops meter-07 from the topology: the gateway adds it again.
        sub_list = [{"productID": SUB_PID, "deviceName": "meter-%02d" % i} for i in range(1, SUBS + 1) if i != 7]
        mark = len(broker.received())
        broker.publish(PREFIX + "sub/topo/change", json.dumps({"id": "77", "version": "1.0",
                                                               "params": {"subList": sub_list}}))
        wait_for(lambda: any(s == "sub/topo/add" and m["params"]["deviceName"] == "meter-07"
                             for s, m in uplink(broker, mark)), timeout=30, what="meter-07 added again")
        replies = [m for s, m in uplink(broker, mark) if s == "sub/topo/change_reply"]
        self.assertEqual([(r["id"], r["code"]) for r in replies], [("77", 200)])
        wait_for(lambda: any(s == "sub/login" and m["params"]["deviceName"] == "meter-07"
                             for s, m in uplink(broker, mark)), timeout=30, what="meter-07 logged in again")
        self.assertIn("no longer lists sub-device(s) meter-07", again.log())
        self.assertEqual(again.stop()[0], 0)
        self.assertEqual(broker.violation_lines(), [])


if __name__ == "__main__":
    unittest.main()
