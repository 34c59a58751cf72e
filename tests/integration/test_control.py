"""Cloud-to-device control (issue 9, items 1-3) on the real binary, against the platform emulator,
with the devices on real Modbus servers (the bundled simulator over TCP, and over RTU through a
socat pty pair):

- on every platform, a write in the platform's own shape changes the register on the Modbus
  server (read back by the test through the simulator, independently of the gateway), and the
  platform's reply arrives with the value read back where the platform's reply has room for it;
- a write to a point that is not writable, an out-of-range value, a value of the wrong type, a
  write to a unit that is switched off and one answered with a Modbus exception each get the
  platform's failure reply, with the reason, before the platform's deadline;
- a plain command name (`on` / `off` mapped on a coil) through OneNET datapoints, legacy $creq,
  generic MQTT, a OneNET service and a ThingsBoard RPC method;
- on a shared RTU line, the other unit's polls keep their rate while writes happen.
The emulator checks every topic the gateway publishes (violations must stay empty)."""
import json
import os
import struct
import time
import unittest

from harness import Broker, Daemon, Procs, Simulator, Subscriber, free_port, pty_pair, wait_for

PID, KEY = "469948", "kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI="

POINTS = """
    points:
      - { name: count, area: holding, address: 0, type: uint32 }
      - { name: relay, area: coil, address: 4, writable: true, commands: { "on": true, "off": false } }
      - { name: setpoint, area: holding, address: 10, type: float32, writable: true, min: 0, max: 100 }
      - { name: level, area: holding, address: 20, type: uint16, scale: 0.1, writable: true }
      - { name: locked, area: holding, address: 30, writable: true }
"""


def words_of_float(x):
    hi, lo = struct.unpack(">HH", struct.pack(">f", x))
    return [hi, lo]


class Platform:
    """How one platform asks for a write and answers it. `write` publishes a request and returns
    its id; `reply(id)` is (ok, values or None, error text) once the reply arrived, else None."""
    reply_topics = []
    emulated = "onenet"  # the emulator's platform
    deadline = 5.0
    values_in_reply = True  # the reply's shape has room for the values read back
    commands = True  # plain command names reach the device
    one_device = False  # the cloud carries m1 only

    def __init__(self, test, broker):
        self.test, self.broker = test, broker
        self.sub = Subscriber(test.procs, broker, self.reply_topics, name="replies.log")
        self.next_id = 100

    def take_id(self):
        self.next_id += 1
        return self.next_id


class ThingModel(Platform):
    reply_topics = ["$sys/%s/+/thing/property/set_reply" % PID, "$sys/%s/+/thing/service/+/invoke_reply" % PID]
    values_in_reply = False  # property set_reply is {"id","code","msg"}; the new value goes as a post
    cloud = "{ platform: onenet, protocol: thing-model, host: 127.0.0.1, port: %d, product_id: \"%s\", product_key: %s, max_rate: 3 }"
    devices = [(PID, "*", KEY)]
    rate = 3

    def write(self, dev, values):
        i = self.take_id()
        self.broker.publish("$sys/%s/%s/thing/property/set" % (PID, dev),
                            json.dumps({"id": str(i), "version": "1.0", "params": values}))
        return ("property", dev, str(i))

    def command(self, dev, name):
        i = self.take_id()
        self.broker.publish("$sys/%s/%s/thing/service/%s/invoke" % (PID, dev, name),
                            json.dumps({"id": str(i), "version": "1.0", "params": {}}))
        return ("service", dev, str(i))

    def reply(self, key):
        kind, dev, i = key
        for t, topic, p in self.sub.messages():
            j = json.loads(p)
            if j.get("id") == i and dev in topic:
                return j["code"] == 200, j.get("data"), j.get("msg", ""), t
        return None


class Datapoints(Platform):
    reply_topics = ["$sys/%s/+/cmd/response/+" % PID]
    cloud = "{ platform: onenet, protocol: datapoints, host: 127.0.0.1, port: %d, product_id: \"%s\", product_key: %s, max_rate: 3 }"
    devices = [(PID, "*", KEY)]
    rate = 3

    def write(self, dev, values):
        i = "cmd-%d" % self.take_id()
        self.broker.publish("$sys/%s/%s/cmd/request/%s" % (PID, dev, i), json.dumps(values))
        return (dev, i)

    def command(self, dev, name):
        i = "cmd-%d" % self.take_id()
        self.broker.publish("$sys/%s/%s/cmd/request/%s" % (PID, dev, i), name)
        return (dev, i)

    def reply(self, key):
        dev, i = key
        for t, topic, p in self.sub.messages():
            if topic == "$sys/%s/%s/cmd/response/%s" % (PID, dev, i):
                j = json.loads(p)
                return j["code"] == 200, j.get("data"), j.get("msg", ""), t
        return None


class Legacy(Platform):
    reply_topics = ["$crsp/+"]
    emulated = "legacy"
    cloud = "{ platform: onenet-legacy, host: 127.0.0.1, port: %d, product_id: \"12345\", keepalive: 120s }"
    devices = [("12345", "5678", "SN-1")]
    device_lines = {"m1": '\n    device_id: "5678"\n    key: SN-1'}
    one_device = True
    rate = 1

    def write(self, dev, values):
        return self.command(dev, json.dumps(values))

    def command(self, dev, name):
        # The platform sends $creq to one device's connection; a broker sends it to every
        # subscriber, so this cloud carries one device (m1).
        i = "%s-%d" % (dev, self.take_id())
        self.broker.publish("$creq/%s" % i, name)
        return i

    def reply(self, i):
        for t, topic, p in self.sub.messages():
            if topic == "$crsp/" + i:
                j = json.loads(p)
                return j["code"] == 0, j.get("data"), j.get("msg", ""), t
        return None


class DaShi(Platform):
    reply_topics = ["sys/pk/+/thing/properties/set/response", "sys/pk/+/thing/service/set/response"]
    emulated = "aiot"
    values_in_reply = False  # properties/set/response has an empty data object; the new value goes up
    cloud = "{ platform: aiot, host: 127.0.0.1, port: %d, product_id: pk }"
    devices = [("pk", "m1", "s1"), ("pk", "m2", "s2")]
    device_lines = {"m1": "\n    key: s1", "m2": "\n    key: s2"}
    rate = 10

    def write(self, dev, values):
        i = str(self.take_id())
        self.broker.publish("sys/pk/%s/thing/properties/set" % dev, json.dumps(
            {"id": i, "version": "1.0", "params": values, "method": "thing.properties.set"}))
        return (dev, i)

    def command(self, dev, name):
        i = str(self.take_id())
        self.broker.publish("sys/pk/%s/thing/service/set" % dev, json.dumps(
            {"id": i, "version": "1.0", "identifier": name, "params": {}, "method": "thing.service.set"}))
        return (dev, i)

    def reply(self, key):
        dev, i = key
        for t, topic, p in self.sub.messages():
            j = json.loads(p)
            if j.get("id") == i and ("/%s/" % dev) in topic:
                return j["code"] == 200, j["data"].get("params"), j.get("message", ""), t
        return None


class ThingsBoard(Platform):
    reply_topics = ["v1/gateway/rpc"]
    emulated = "thingsboard"
    cloud = "{ platform: thingsboard, host: 127.0.0.1, port: %d, username: TOKEN }"
    devices = [("-", "-", "TOKEN")]
    rate = 10
    deadline = 10.0

    def write(self, dev, values):
        i = self.take_id()
        self.broker.publish("v1/gateway/rpc", json.dumps(
            {"device": dev, "data": {"id": i, "method": "set", "params": values}}))
        return (dev, i)

    def command(self, dev, name):
        i = self.take_id()
        self.broker.publish("v1/gateway/rpc", json.dumps({"device": dev, "data": {"id": i, "method": name}}))
        return (dev, i)

    def reply(self, key):
        dev, i = key
        for t, topic, p in self.sub.messages():
            if len(p) > 100000:
                continue  # a request of the test's own on the same topic (the deep one)
            j = json.loads(p)
            if j.get("device") == dev and j.get("id") == i and "success" in j.get("data", {}):
                d = j["data"]
                return d["success"], d.get("values"), d.get("error", ""), t
        return None


class Mqtt(Platform):
    reply_topics = ["fl/+/set/reply"]
    cloud = "{ platform: mqtt, host: 127.0.0.1, port: %d, command_topic: \"fl/{device}/set\" }"
    devices = None
    rate = 100

    def write(self, dev, values):
        i = "w%d" % self.take_id()
        self.broker.publish("fl/%s/set" % dev, json.dumps(dict(values, id=i)))
        return (dev, i)

    def command(self, dev, name):
        # A plain payload carries no id: the reply is the next one on the device's reply topic.
        seen = len([m for m in self.sub.messages() if m[1] == "fl/%s/set/reply" % dev])
        self.broker.publish("fl/%s/set" % dev, name)
        return (dev, None, seen)

    def reply(self, key):
        dev, i = key[0], key[1]
        mine = [m for m in self.sub.messages() if m[1] == "fl/%s/set/reply" % dev]
        if i is None:
            mine = mine[key[2]:]
        for t, topic, p in mine:
            j = json.loads(p)
            if i is None or j.get("id") == i:
                return j["success"], j.get("values"), j.get("error", ""), t
        return None


GW_PID, GW_KEY = "IHL2T99b8k", "rs2FaE5BuygJZkWKDA5okKt1RFpwOx53hbu6hwyCS4U="
SUB_PID = "SubPid01"


class SubDevices(Platform):
    """OneNET gateway sub-devices: sub/property/set and sub/service/invoke through gw01."""
    reply_topics = ["$sys/%s/gw01/thing/sub/property/set_reply" % GW_PID,
                    "$sys/%s/gw01/thing/sub/service/invoke_reply" % GW_PID]
    values_in_reply = False  # sub/property/set_reply has no data; a service's output has the values
    cloud = "{ platform: onenet, protocol: thing-model, host: 127.0.0.1, port: %d, product_id: \"%s\", max_rate: 3 }"
    devices = [(GW_PID, "gw01", GW_KEY), (SUB_PID, "*", KEY)]
    device_lines = {"m1": "\n    via: gw01\n    product_id: %s\n    product_key: %s" % (SUB_PID, KEY),
                    "m2": "\n    via: gw01\n    product_id: %s\n    product_key: %s" % (SUB_PID, KEY)}
    gateway = """
  - { name: gw01, cloud: c, bus: line, unit: 1, gateway: true, key: %s, interval: 1s,
      points: [ { name: uptime, area: holding, address: 3 } ] }""" % GW_KEY
    rate = 3

    def write(self, dev, values):
        i = str(self.take_id())
        self.broker.publish("$sys/%s/gw01/thing/sub/property/set" % GW_PID, json.dumps(
            {"id": i, "version": "1.0", "params": {"productID": SUB_PID, "deviceName": dev, "params": values}}))
        return i

    def command(self, dev, name):
        i = str(self.take_id())
        self.broker.publish("$sys/%s/gw01/thing/sub/service/invoke" % GW_PID, json.dumps(
            {"id": i, "version": "1.0",
             "params": {"productID": SUB_PID, "deviceName": dev, "identifier": name, "input": {}}}))
        return i

    def reply(self, i):
        for t, topic, p in self.sub.messages():
            j = json.loads(p)
            if j.get("id") == i:
                data = j.get("data")
                return j["code"] == 200, data.get("output") if data else None, j.get("msg", ""), t
        return None


class ControlTest(unittest.TestCase):
    def start(self, platform_class, rtu=False):
        self.procs = Procs(self)
        if rtu:
            gw_side, dev_side = pty_pair(self.procs)
            self.sim = Simulator(self.procs, rtu=dev_side, units=(1, 2))
            bus = "{ driver: modbus-rtu, device: %s, baud: 19200, timeout: 300ms, retries: 0 }" % gw_side
        else:
            port = free_port()
            self.sim = Simulator(self.procs, tcp_port=port, units=(1, 2))
            bus = "{ driver: modbus-tcp, host: 127.0.0.1, port: %d, timeout: 300ms, retries: 0 }" % port
        self.sim.cmd("protect 1 holding 30")
        self.sim.cmd("protect 2 holding 30")
        p = platform_class
        if p.devices is None:
            broker = Broker(self.procs)
        else:
            broker = Broker(self.procs, devices=p.devices, platform=p.emulated, rate=p.rate)
        if p is SubDevices:
            cloud = p.cloud % (broker.port, GW_PID)
        else:
            cloud = p.cloud % ((broker.port, PID, KEY) if "onenet," in p.cloud else (broker.port,))
        devs = getattr(p, "gateway", "")
        for dev, unit in (("m1", 1),) if p.one_device else (("m1", 1), ("m2", 2)):
            extra = getattr(p, "device_lines", {}).get(dev, "")
            devs += f"""
  - name: {dev}
    cloud: c
    bus: line
    unit: {unit}
    interval: 500ms{extra}""" + POINTS
        self.daemon = Daemon(self.procs, f"clouds:\n  c: {cloud}\nbuses:\n  line: {bus}\ndevices:{devs}")
        self.broker = broker
        self.platform = p(self, broker)
        wait_for(lambda: "connected" in self.daemon.log() and self.daemon.log().count("connected") >= 1,
                 timeout=20, what="a session to connect")
        time.sleep(1.5)  # every session connected and subscribed (the broker restart tests cover the rest)
        return self.platform

    def ask(self, key, sent_at):
        r = wait_for(lambda: self.platform.reply(key), timeout=self.platform.deadline + 5, what="the reply to %r" % (key,))
        ok, values, error, t = r
        # The reply must come before the platform gives up (its documented deadline).
        self.assertLess(t - sent_at, self.platform.deadline, "reply to %r after the platform's deadline" % (key,))
        return ok, values, error

    def write(self, dev, values):
        t = time.time()
        return self.ask(self.platform.write(dev, values), t)

    def command(self, dev, name):
        t = time.time()
        return self.ask(self.platform.command(dev, name), t)

    def test_a_write_nested_100000_levels_deep_is_refused_on_every_platform(self):
        """A write whose value is 100,000 nested arrays (about 200 KB, under every payload limit)
        overflowed the north thread's stack through a recursive copy: the daemon died, and under
        systemd anyone who can publish a command kept it in a crash loop."""
        deep = "[" * 100000 + "1" + "]" * 100000
        for cls in (ThingModel, Datapoints, Legacy, DaShi, ThingsBoard, Mqtt, SubDevices):
            with self.subTest(cls.__name__):
                p = self.start(cls)
                real = self.broker.publish
                self.broker.publish = lambda topic, payload: real(topic, payload.replace('"__DEEP__"', deep))
                p.write("m1", {"setpoint": "__DEEP__"})
                self.broker.publish = real
                ok, _, error = self.write("m1", {"setpoint": 7.5})  # still serving, in order after it
                self.assertIsNone(self.daemon.proc.poll(), self.daemon.log()[-3000:])
                self.assertTrue(ok, error)
                self.assertEqual(self.daemon.stop()[0], 0)

    def scenario(self, platform_class, rtu=False):
        p = self.start(platform_class, rtu)
        ok, values, error = self.write("m1", {"setpoint": 42.5})
        self.assertTrue(ok, error)
        if p.values_in_reply:
            self.assertEqual(values, {"setpoint": 42.5})
        self.assertEqual(self.sim.get(1, "holding", 10, 2), words_of_float(42.5))
        ok, values, error = self.write("m1", {"level": "12.3"})  # numbers as text, as OneNET sends them
        self.assertTrue(ok, error)
        self.assertEqual(self.sim.get(1, "holding", 20), [123], "scale reversed: 12.3 / 0.1")
        ok, values, error = self.command("m1", "on")
        self.assertTrue(ok, error)
        self.assertEqual(self.sim.get(1, "coil", 4), [1])
        if p.values_in_reply or platform_class in (ThingModel, SubDevices):
            self.assertEqual(values, {"relay": True})
        ok, values, error = self.command("m1", "off")
        self.assertTrue(ok, error)
        self.assertEqual(self.sim.get(1, "coil", 4), [0])
        # Failures: each with the platform's failure reply and its reason, nothing written.
        before = self.sim.get(1, "holding", 0, 40)
        for values, reason in (({"count": 5}, "not writable"), ({"setpoint": 500}, "out of range"),
                               ({"setpoint": "warm"}, "type mismatch"), ({"nosuch": 1}, "unknown point"),
                               ({"locked": 1}, "exception 4")):
            ok, _, error = self.write("m1", values)
            self.assertFalse(ok, values)
            self.assertIn(reason, error)
        after = self.sim.get(1, "holding", 0, 40)
        self.assertEqual(before[2:], after[2:], "no refused write reached the device")
        ok, _, error = self.command("m1", "warmer")
        self.assertFalse(ok)
        # A unit switched off: the write times out on the bus, and the platform hears so in time.
        dev, unit = ("m1", 1) if p.one_device else ("m2", 2)
        self.sim.cmd("off %d" % unit)
        ok, _, error = self.write(dev, {"setpoint": 1})
        self.assertFalse(ok)
        self.assertIn("timeout", error.lower())
        self.sim.cmd("on %d" % unit)
        # Every write is logged (who asked, point, value, result) and counted.
        log = self.daemon.log()
        self.assertIn("write from cloud c", log)
        self.assertRegex(log, r"to m1: setpoint=42.5: done, read back setpoint=42.5")

        def counted():
            with open(os.path.join(self.daemon.data_dir, "status.json")) as f:
                sessions = json.load(f)["sessions"]
            return [sum(x[k] for x in sessions) for k in ("writes_ok", "writes_failed", "commands_refused")]
        # 4 done; the exception and the switched-off unit failed on the bus; 5 refused unwritten
        wait_for(lambda: counted() == [4, 2, 5], timeout=5, what="the write counters in status.json")
        self.assertEqual(self.daemon.stop()[0], 0)
        self.assertEqual(self.broker.violation_lines() if p.devices is not None else [], [])
        return log

    def test_onenet_thing_model(self):
        self.scenario(ThingModel)

    def test_onenet_datapoints(self):
        self.scenario(Datapoints)

    def test_onenet_legacy(self):
        self.scenario(Legacy)

    def test_dashi(self):
        self.scenario(DaShi)

    def test_thingsboard(self):
        self.scenario(ThingsBoard)

    def test_onenet_gateway_sub_devices(self):
        self.scenario(SubDevices)

    def test_generic_mqtt_over_rtu(self):
        self.scenario(Mqtt, rtu=True)

    def test_thingsboard_shared_attributes(self):
        """A shared attribute named like a writable point is written (ThingsBoard expects no reply);
        the platform's other attributes are left alone."""
        self.start(ThingsBoard)
        self.broker.publish("v1/gateway/attributes", json.dumps({"device": "m1", "data": {"setpoint": 12.5, "fw": "2"}}))
        wait_for(lambda: self.sim.get(1, "holding", 10, 2) == words_of_float(12.5), timeout=10,
                 what="the shared attribute written")
        self.assertEqual(self.daemon.stop()[0], 0)
        self.assertIn("(shared attributes) to m1: setpoint=12.5: done", self.daemon.log())
        self.assertEqual(self.broker.violation_lines(), [])

    def test_generic_mqtt_point_topics(self):
        """command_topic with a {point} level: the payload is the point's value."""
        Mqtt.cloud_saved = Mqtt.cloud
        Mqtt.cloud = "{ platform: mqtt, host: 127.0.0.1, port: %d, command_topic: \"fl/{device}/set/{point}\" }"
        try:
            self.start(Mqtt)
        finally:
            Mqtt.cloud = Mqtt.cloud_saved
        sub = Subscriber(self.procs, self.broker, ["fl/m1/set/+/reply"], name="point-replies.log")
        self.broker.publish("fl/m1/set/level", "7.5")
        self.broker.publish("fl/m1/set/relay", "on")
        self.broker.publish("fl/m1/set/count", "1")
        wait_for(lambda: len(sub.messages()) == 3, timeout=10, what="three replies")
        replies = {t: json.loads(p) for _, t, p in sub.messages()}
        self.assertEqual(replies["fl/m1/set/level/reply"], {"success": True, "values": {"level": 7.5}})
        self.assertEqual(replies["fl/m1/set/relay/reply"], {"success": True, "values": {"relay": True}})
        self.assertEqual(replies["fl/m1/set/count/reply"], {"success": False, "error": "point count is not writable"})
        self.assertEqual(self.sim.get(1, "holding", 20), [75])
        self.assertEqual(self.sim.get(1, "coil", 4), [1])
        self.assertEqual(self.daemon.stop()[0], 0)

    def test_polls_of_other_units_keep_their_rate_while_writing_on_rtu(self):
        """Writes go ahead of polls on a shared RTU line, one request at a time: unit 2's samples
        keep coming at its interval while unit 1 gets a write every 100 ms."""
        self.start(Mqtt, rtu=True)
        data = Subscriber(self.procs, self.broker, ["fieldlink/m2"], name="m2.log")
        wait_for(lambda: len(data.messages()) >= 2, timeout=10, what="unit 2's samples")
        t0 = time.time()
        keys = []
        for n in range(30):
            keys.append(self.platform.write("m1", {"setpoint": float(n)}))
            time.sleep(0.1)
        for k in keys:
            ok, values, error, _ = wait_for(lambda: self.platform.reply(k), timeout=10, what="every write's reply")
            self.assertTrue(ok, error)
        t1 = time.time()
        stamps = [t for t, _, _ in data.messages() if t0 <= t <= t1]
        gaps = [b - a for a, b in zip(stamps, stamps[1:])]
        # interval 500 ms: a poll held back by a write would show as a gap of several intervals
        self.assertGreaterEqual(len(stamps), int((t1 - t0) / 0.5) - 2, stamps)
        self.assertLess(max(gaps), 1.5, gaps)
        self.assertEqual(self.sim.get(1, "holding", 10, 2), words_of_float(29.0))
        self.assertEqual(self.daemon.stop()[0], 0)


if __name__ == "__main__":
    unittest.main()
