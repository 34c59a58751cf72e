"""Configuration pushed from the platform (issue 24, item 1) on the real binary: generic MQTT on a
real mosquitto (the gateway's config_topic), the device the bundled simulator over Modbus TCP.

- A good configuration is checked, written atomically over the running one, reloaded (the
  session stays connected), verified and reported applied with its version (sha256 of the text);
  its new device is published; the replaced and the pushed versions are kept in config-history.
- A conf.d fragment is pushed the same way and its device starts.
- A broken one is refused with its errors (file:line:col) and nothing is written or restarted;
  so is one with a secret written out, one that turns its own channel off, one for another file.
- One that breaks every session (the broker's port) is rolled back after remote_config_deadline:
  the previous file is back, data flows again, and "rolled back" is reported.
- The same push again (a retained message after a reconnect) is not applied twice."""
import hashlib
import json
import os
import subprocess
import time
import unittest

from harness import Broker, Daemon, Procs, Simulator, Subscriber, free_port, wait_for

TOPIC = "site1/gw1/config"
# A second device on the simulator's unit 2, added by a pushed file or fragment.
FAN = """  - name: fan
    cloud: local
    bus: plc
    unit: 2
    interval: 200ms
    points:
      - { name: speed, area: holding, address: 20 }
"""


def version(text):
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class RemoteConfigTest(unittest.TestCase):
    def setUp(self):
        self.procs = Procs(self)
        self.broker = Broker(self.procs)
        self.modbus_port = free_port()
        self.sim = Simulator(self.procs, tcp_port=self.modbus_port, units=[1, 2])
        self.data = Subscriber(self.procs, self.broker, ["fl/#"], name="data.log")
        self.states = Subscriber(self.procs, self.broker, [TOPIC + "/state"], name="states.log")
        self.daemon = Daemon(self.procs, self.config(), name="fieldlinkd.log")
        wait_for(lambda: self.points("pump", "a"), timeout=15, what="the first sample")

    def tearDown(self):
        self.procs.close()

    def config(self, port=None, points="[a]", remote="remote_config: true", deadline="5s", extra_device=""):
        point_lines = "".join(
            "      - { name: %s, area: holding, address: %d }\n" % (p, 10 + i)
            for i, p in enumerate(points.strip("[]").split(", ")))
        return f"""gateway:
  log_level: info
clouds:
  local:
    platform: mqtt
    host: 127.0.0.1
    port: {port or self.broker.port}
    topic: "fl/{{device}}"
    config_topic: {TOPIC}
    {remote}
    remote_config_deadline: {deadline}
buses:
  plc: {{ driver: modbus-tcp, host: 127.0.0.1, port: {self.modbus_port}, timeout: 300ms }}
devices:
  - name: pump
    cloud: local
    bus: plc
    unit: 1
    interval: 200ms
    points:
{point_lines}{extra_device}"""

    def points(self, device, point):
        return [m for _, m in self.data.json_messages("fl/" + device) if point in m.get("values", {})]

    def push(self, payload):
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.broker.port), "-q", "1", "-t", TOPIC,
                        "-s"], input=payload.encode(), check=True, timeout=10)

    def state(self, request_id, result, timeout=20):
        def find():
            for _, m in self.states.json_messages(TOPIC + "/state"):
                if m.get("id") == request_id and m.get("result") == result:
                    return m
            return None
        wait_for(lambda: find() is not None, timeout=timeout,
                 what="state %s of request %s (states: %s)" % (result, request_id,
                                                               self.procs.read("states.log")[-2000:]))
        return find()

    def results(self, request_id):
        return [m["result"] for _, m in self.states.json_messages(TOPIC + "/state") if m.get("id") == request_id]

    def on_disk(self):
        with open(self.daemon.config) as f:
            return f.read()

    def history(self):
        d = os.path.join(self.daemon.data_dir, "config-history")
        return sorted(n for n in os.listdir(d) if n != "state.json") if os.path.isdir(d) else []

    def test_a_good_configuration_is_applied_and_its_version_reported(self):
        before = self.on_disk()
        text = self.daemon._with_data_dir(self.config(extra_device=FAN))
        self.push(json.dumps({"id": "r1", "config": text}))
        state = self.state("r1", "applied")
        self.assertEqual(state["version"], version(text))
        self.assertEqual(state["file"], "config.yaml")
        self.assertEqual(state["error"], "")
        self.assertEqual(self.results("r1"), ["verifying", "applied"])
        self.assertEqual(self.on_disk(), text)
        wait_for(lambda: self.points("fan", "speed"), timeout=10, what="the pushed configuration's new device")
        # the granular reload: the channel's session stayed connected, the new device's started
        self.assertIn("1 session(s) kept connected, 0 stopped, 1 started", self.daemon.log())
        kept = self.history()
        self.assertEqual(len(kept), 2, kept)
        self.assertTrue(kept[0].endswith("-before-config.yaml") and kept[1].endswith("-pushed-config.yaml"), kept)
        with open(os.path.join(self.daemon.data_dir, "config-history", kept[0])) as f:
            self.assertEqual(f.read(), before)
        self.assertFalse([n for n in os.listdir(os.path.dirname(self.daemon.config)) if n.endswith(".tmp")])

        # The same push again (a retained copy after a reconnect): reported, not applied again.
        self.push(json.dumps({"id": "r1", "config": text}))
        time.sleep(1)
        self.assertEqual(self.daemon.log().count("written to"), 1)

    def test_a_fragment_is_pushed_and_its_device_starts(self):
        fragment = "devices:\n" + FAN
        self.push(json.dumps({"id": "f1", "file": "conf.d/fan.yaml", "config": fragment}))
        state = self.state("f1", "applied")
        self.assertEqual(state["file"], "conf.d/fan.yaml")
        with open(os.path.join(os.path.dirname(self.daemon.config), "conf.d", "fan.yaml")) as f:
            self.assertEqual(f.read(), fragment)
        wait_for(lambda: self.points("fan", "speed"), timeout=10, what="the pushed fragment's device")

    def test_a_broken_configuration_is_refused_with_its_errors_and_nothing_restarts(self):
        before = self.on_disk()
        connects = self.daemon.log().count("connected to cloud")
        broken = self.daemon._with_data_dir(self.config()).replace("interval: 200ms", "interval: 200 parsecs")
        self.push(json.dumps({"id": "b1", "config": broken}))
        state = self.state("b1", "refused")
        line = broken.splitlines().index("    interval: 200 parsecs") + 1
        self.assertRegex(state["error"], r"config\.yaml:%d:\d+: devices\[0\]\.interval: " % line)
        self.assertEqual(state["version"], version(broken))

        secret = self.daemon._with_data_dir(self.config()).replace("    config_topic:", "    password: hunter2\n"
                                                                   "    config_topic:")
        self.push(json.dumps({"id": "b2", "config": secret}))
        state = self.state("b2", "refused")
        self.assertIn("clouds.local.password", state["error"])
        self.assertIn("${ENV_VAR}", state["error"])
        self.assertNotIn("hunter2", self.daemon.log())

        off = self.daemon._with_data_dir(self.config(remote="remote_config: false"))
        self.push(json.dumps({"id": "b3", "config": off}))
        self.assertIn("turns remote_config off", self.state("b3", "refused")["error"])

        self.push(json.dumps({"id": "b4", "file": "../../etc/passwd", "config": "x: 1"}))
        self.assertIn("is not a file a pushed configuration may replace", self.state("b4", "refused")["error"])
        self.push('{"id": "b5", "file": 7}')
        self.assertIn('"config" is missing', self.state("b5", "refused")["error"])

        self.assertEqual(self.on_disk(), before)
        self.assertEqual(self.history(), [])
        self.assertNotIn("reloaded", self.daemon.log())
        self.assertEqual(self.daemon.log().count("connected to cloud"), connects)
        self.assertEqual(self.daemon.proc.poll(), None)

    def test_a_configuration_that_breaks_every_session_is_rolled_back(self):
        before = self.on_disk()
        dead = free_port()
        text = self.daemon._with_data_dir(self.config(port=dead))
        self.push(json.dumps({"id": "k1", "config": text}))
        # (verifying goes out on the old session just before it is replaced)
        state = self.state("k1", "rolled back", timeout=30)
        self.assertIn("did not connect within 5 s", state["error"])
        self.assertEqual(state["version"], version(text))
        self.assertEqual(self.on_disk(), before)
        seen = len(self.points("pump", "a"))
        wait_for(lambda: len(self.points("pump", "a")) > seen + 3, timeout=15, what="data again after the rollback")
        self.assertEqual(self.daemon.proc.poll(), None)


class ThingsBoardRemoteConfigTest(unittest.TestCase):
    """The shared attribute fieldlink_config of the gateway device carries the configuration; the
    result comes back as the gateway's client attributes (fieldlink_config_*). The access token
    is a reference (${TB_TOKEN}): written out, it would be refused. The broker plays ThingsBoard
    (the emulator: token, topics, payload size)."""

    def setUp(self):
        self.procs = Procs(self)
        self.broker = Broker(self.procs, devices=[("-", "-", "gw-token-1")], platform="thingsboard",
                             rate=50)  # (ThingsBoard has no rate rule: the emulator only bounds it)
        self.modbus_port = free_port()
        self.sim = Simulator(self.procs, tcp_port=self.modbus_port, units=[1, 2])
        self.sub = Subscriber(self.procs, self.broker, ["v1/#"], name="tb.log")
        env = dict(os.environ, TB_TOKEN="gw-token-1")
        self.daemon = Daemon(self.procs, self.config(""), env=env)
        wait_for(lambda: "v1/devices/me/attributes (QoS" in self.broker.log(), timeout=15,
                 what="the gateway subscribed to its own attributes")

    def tearDown(self):
        self.procs.close()

    def config(self, more):
        return f"""gateway:
  log_level: info
clouds:
  tb: {{ platform: thingsboard, host: 127.0.0.1, port: {self.broker.port}, username: "${{TB_TOKEN}}",
        remote_config: true }}
buses:
  plc: {{ driver: modbus-tcp, host: 127.0.0.1, port: {self.modbus_port}, timeout: 300ms }}
devices:
  - {{ name: pump, cloud: tb, bus: plc, unit: 1, interval: 200ms, points: [{{ name: a, area: holding, address: 10 }}] }}
{more}"""

    def reported(self):
        return [m for _, m in self.sub.json_messages("v1/devices/me/attributes") if "fieldlink_config_result" in m]

    def test_a_shared_attribute_is_applied_and_reported_as_client_attributes(self):
        text = self.daemon._with_data_dir(self.config(
            "  - { name: fan, cloud: tb, bus: plc, unit: 2, interval: 200ms, "
            "points: [{ name: speed, area: holding, address: 20 }] }\n"))
        self.broker.publish("v1/devices/me/attributes", json.dumps({"fieldlink_config": text}))
        wait_for(lambda: any(m["fieldlink_config_result"] == "applied" for m in self.reported()), timeout=20,
                 what="the applied report")
        applied = [m for m in self.reported() if m["fieldlink_config_result"] == "applied"][0]
        self.assertEqual(applied["fieldlink_config_version"], version(text))

        def fan_data():
            return [m for _, m in self.sub.json_messages("v1/gateway/telemetry") if "fan" in m]
        wait_for(fan_data, timeout=10, what="the new device's telemetry")

        literal = text.replace('"${TB_TOKEN}"', "gw-token-1").replace("interval: 200ms", "interval: 300ms", 1)
        self.broker.publish("v1/devices/me/attributes",
                            json.dumps({"fieldlink_config": {"config": literal, "id": 9}}))
        wait_for(lambda: any(m.get("fieldlink_config_id") == "9" for m in self.reported()), timeout=20,
                 what="the refusal")
        refused = [m for m in self.reported() if m.get("fieldlink_config_id") == "9"][0]
        self.assertEqual(refused["fieldlink_config_result"], "refused")
        self.assertIn("clouds.tb.username: username is written out", refused["fieldlink_config_error"])
        self.assertNotIn("gw-token-1", self.daemon.log())
        self.assertEqual(self.broker.violation_lines(), [])

    def test_one_set_while_the_gateway_was_offline_is_applied_when_it_connects(self):
        fan = ("  - { name: fan, cloud: tb, bus: plc, unit: 2, interval: 200ms, "
               "points: [{ name: speed, area: holding, address: 20 }] }\n")
        text = self.daemon._with_data_dir(self.config(fan))
        self.assertEqual(self.daemon.stop()[0], 0)
        # Set on the platform while no gateway is connected: nobody receives the update itself.
        self.broker.publish("v1/devices/me/attributes", json.dumps({"fieldlink_config": text}))
        env = dict(os.environ, TB_TOKEN="gw-token-1")
        again = Daemon(self.procs, self.config(""), name="fieldlinkd-2.log", env=env)
        wait_for(lambda: any(m["fieldlink_config_result"] == "applied" and
                             m["fieldlink_config_version"] == version(text) for m in self.reported()),
                 timeout=20, what="the configuration set while offline applied")
        with open(again.config) as f:
            self.assertEqual(f.read(), text)

        def fan_data():
            return [m for _, m in self.sub.json_messages("v1/gateway/telemetry") if "fan" in m]
        wait_for(fan_data, timeout=10, what="the new device's telemetry")
        self.assertEqual(again.stop()[0], 0)

        # The next start asks again and gets the same version: reported, not applied twice.
        reports = len(self.reported())
        third = Daemon(self.procs, self.config(fan), name="fieldlinkd-3.log", env=env)
        wait_for(lambda: len(self.reported()) >= reports + 2, timeout=20,
                 what="the report on connect and the one answering the gateway's request")
        self.assertTrue(all(m["fieldlink_config_result"] == "applied" for m in self.reported()[reports:]))
        self.assertNotIn("written to", third.log())
        self.assertNotIn("reloaded", third.log())
        self.assertEqual(self.broker.violation_lines(), [])


class OnenetRemoteConfigTest(unittest.TestCase):
    """OneNET thing model on the emulator (token check, topic ACL, rate, answers): the service
    fieldlink_config of the gateway device carries the configuration; its invoke_reply answers at
    once (200 once checked and written, the refusal with its first error), and every result goes
    as the event fieldlink_config."""
    PID, KEY = "IHL2T99b8k", "rs2FaE5BuygJZkWKDA5okKt1RFpwOx53hbu6hwyCS4U="
    SUB_PID, SUB_KEY = "SubPid01", "kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI="

    def setUp(self):
        self.procs = Procs(self)
        self.broker = Broker(self.procs, devices=[(self.PID, "gw01", self.KEY), (self.SUB_PID, "*", self.SUB_KEY)],
                             rate=5)
        self.modbus_port = free_port()
        self.sim = Simulator(self.procs, tcp_port=self.modbus_port, units=[1, 2, 3])
        env = dict(os.environ, GW_KEY=self.KEY, SUB_KEY=self.SUB_KEY)
        self.daemon = Daemon(self.procs, self.config(), env=env)
        wait_for(lambda: self.sent("sub/login"), timeout=20, what="the sub-device's login")

    def tearDown(self):
        self.procs.close()

    def config(self):
        return f"""gateway:
  log_level: info
clouds:
  studio: {{ platform: onenet, protocol: thing-model, host: 127.0.0.1, port: {self.broker.port},
            product_id: {self.PID}, remote_config: true, remote_config_deadline: 10s, max_rate: 5 }}
buses:
  plc: {{ driver: modbus-tcp, host: 127.0.0.1, port: {self.modbus_port}, timeout: 300ms }}
devices:
  - {{ name: gw01, cloud: studio, bus: plc, unit: 1, gateway: true, key: "${{GW_KEY}}", interval: 1s,
       points: [ {{ name: uptime, area: holding, address: 3 }} ] }}
  - {{ name: meter-01, cloud: studio, bus: plc, unit: 2, via: gw01, product_id: {self.SUB_PID},
       product_key: "${{SUB_KEY}}", interval: 1s, points: [ {{ name: Ua, area: holding, address: 0 }} ] }}
"""

    def sent(self, suffix):
        prefix = f"$sys/{self.PID}/gw01/thing/"
        return [json.loads(p) for _, t, p in self.broker.received() if t == prefix + suffix]

    def invoke(self, request_id, params):
        self.broker.publish(f"$sys/{self.PID}/gw01/thing/service/fieldlink_config/invoke",
                            json.dumps({"id": request_id, "version": "1.0", "params": params}))

    def reply(self, request_id):
        wait_for(lambda: [m for m in self.sent("service/fieldlink_config/invoke_reply") if m["id"] == request_id],
                 timeout=15, what="the invoke_reply of " + request_id)
        return [m for m in self.sent("service/fieldlink_config/invoke_reply") if m["id"] == request_id][0]

    def events(self):
        return [m["params"]["fieldlink_config"]["value"] for m in self.sent("event/post")
                if "fieldlink_config" in m["params"]]

    def test_the_service_applies_a_fragment_and_refuses_a_written_out_key(self):
        fragment = f"""devices:
  - {{ name: meter-02, cloud: studio, bus: plc, unit: 3, via: gw01, product_id: {self.SUB_PID},
       product_key: "${{SUB_KEY}}", interval: 1s, points: [ {{ name: Ua, area: holding, address: 0 }} ] }}
"""
        self.invoke("101", {"config": fragment, "file": "conf.d/meter-02.yaml"})
        reply = self.reply("101")
        self.assertEqual(reply["code"], 200)
        self.assertEqual(reply["msg"], "accepted: verifying")
        self.assertEqual(reply["data"]["version"], version(fragment))
        wait_for(lambda: any(e["result"] == "applied" and e["id"] == "101" for e in self.events()), timeout=20,
                 what="the event reporting it applied")
        wait_for(lambda: [m for m in self.sent("sub/login") if m["params"]["deviceName"] == "meter-02"],
                 timeout=20, what="the pushed sub-device's login")

        literal = fragment.replace('"${SUB_KEY}"', self.SUB_KEY).replace("meter-02", "meter-03")
        self.invoke("102", {"config": literal, "file": "conf.d/meter-03.yaml"})
        reply = self.reply("102")
        self.assertEqual(reply["code"], 100)
        self.assertRegex(reply["msg"], r"^refused: .*conf\.d/meter-03\.yaml:3:21: devices\[0\]\.product_key: ")
        wait_for(lambda: any(e["result"] == "refused" and e["id"] == "102" for e in self.events()), timeout=15,
                 what="the event reporting the refusal")
        self.assertFalse(os.path.exists(os.path.join(os.path.dirname(self.daemon.config), "conf.d", "meter-03.yaml")))
        self.assertNotIn(self.SUB_KEY, self.daemon.log())
        self.assertEqual(self.broker.violation_lines(), [])


if __name__ == "__main__":
    unittest.main()
