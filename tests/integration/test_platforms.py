"""Every platform profile against the emulator broker, which enforces that platform's login and
topic rules (and for OneNET's thing model its payload and topology rules); platform commands sent
by the test are answered on the platform's reply topics."""
import json
import time
import unittest

from harness import Broker, Daemon, Procs, Subscriber, free_port, wait_for

GW_PID, GW_KEY = "IHL2T99b8k", "rs2FaE5BuygJZkWKDA5okKt1RFpwOx53hbu6hwyCS4U="
SUB_PID, SUB_PRODUCT_KEY = "SubPid01", "kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI="


def wait_reply(sub, topic, timeout=10):
    return wait_for(lambda: sub.json_messages(topic), timeout=timeout, what="a reply on " + topic)[-1][1]


class PlatformsTest(unittest.TestCase):
    def test_onenet_gateway_with_20_sub_devices(self):
        procs = Procs(self)
        broker = Broker(procs, devices=[(GW_PID, "gw01", GW_KEY), (GW_PID, "solo", GW_KEY), (SUB_PID, "*", SUB_PRODUCT_KEY)],
                        rate=5)
        sub = Subscriber(procs, broker, ["$sys/#"])
        subs = "".join(f"""
  - name: meter-{i:02d}
    cloud: studio
    bus: sim
    unit: {i}
    via: gw01
    product_id: {SUB_PID}
    product_key: {SUB_PRODUCT_KEY}
    interval: 1s
    points:
      - {{ name: Ua, area: holding, address: 0 }}
      - {{ name: Ia, area: holding, address: 1, scale: 0.1 }}
""" for i in range(1, 21))
        daemon = Daemon(procs, f"""
clouds:
  studio:
    platform: onenet
    protocol: thing-model
    host: 127.0.0.1
    port: {broker.port}
    product_id: {GW_PID}
    max_rate: 5
buses:
  sim: {{ driver: sim }}
devices:
  - name: gw01
    cloud: studio
    bus: sim
    unit: 100
    gateway: true
    key: {GW_KEY}
    interval: 1s
    points:
      - {{ name: uptime, area: holding, address: 3 }}
  - {{ name: solo, cloud: studio, bus: sim, unit: 99, key: {GW_KEY}, interval: 1s,
       points: [ {{ name: WF, area: input, address: 2, scale: 0.5 }} ] }}
{subs}""")
        pack = "$sys/%s/gw01/thing/pack/post" % GW_PID
        seen = lambda: {e["identity"]["deviceName"] for _, m in sub.json_messages(pack) for e in m["params"] if "identity" in e}
        wait_for(lambda: len(seen()) == 20, timeout=60, what="data from all 20 sub-devices")

        # A platform "sub-device property get" is answered from the latest values.
        broker.publish("$sys/%s/gw01/thing/sub/property/get" % GW_PID, json.dumps(
            {"id": "77", "version": "1.0", "params": {"productID": SUB_PID, "deviceName": "meter-05", "params": ["Ua"]}}))
        r = wait_reply(sub, "$sys/%s/gw01/thing/sub/property/get_reply" % GW_PID)
        self.assertEqual((r["id"], r["code"]), ("77", 200))
        self.assertIsInstance(r["data"]["Ua"], int)
        # Writes are refused with a clear code until the downlink issue.
        broker.publish("$sys/%s/gw01/thing/property/set" % GW_PID, '{"id":"78","version":"1.0","params":{"uptime":1}}')
        r = wait_reply(sub, "$sys/%s/gw01/thing/property/set_reply" % GW_PID)
        self.assertEqual(r["id"], "78")
        self.assertNotEqual(r["code"], 200)
        broker.publish("$sys/%s/gw01/thing/property/set" % GW_PID, "this is not json")
        broker.publish("$sys/%s/gw01/thing/property/set" % GW_PID, "x" * 300000)
        wait_for(lambda: "refused unread" in daemon.log(), timeout=10, what="the oversized message to be refused")
        # A direct (non-gateway) thing-model device posts its properties with their acquisition time.
        post = wait_for(lambda: sub.json_messages("$sys/%s/solo/thing/property/post" % GW_PID), timeout=10,
                        what="property/post from solo")
        self.assertEqual(post[0][1]["params"]["WF"]["value"], (99 * 100 + 2 + 0) * 0.5)
        self.assertIn("time", post[0][1]["params"]["WF"])
        self.assertEqual(daemon.stop()[0], 0)

        msgs = sub.json_messages(pack)
        for _, m in msgs:
            self.assertLessEqual(len(m["params"]), 10, "pack/post carries at most 10 devices")
            for e in m["params"]:
                self.assertLessEqual(len(e["properties"]), 100)
                if "identity" in e:
                    self.assertEqual(e["identity"]["productID"], SUB_PID)
                    unit = int(e["identity"]["deviceName"][-2:])
                    ua = e["properties"]["Ua"]
                    self.assertGreaterEqual(ua["value"], unit * 100)  # sim: unit*100 + address + reads
                    self.assertIn("time", ua)
        self.assertEqual(len(sub.json_messages("$sys/%s/gw01/thing/sub/topo/add" % GW_PID)), 20)
        self.assertEqual(len(sub.json_messages("$sys/%s/gw01/thing/sub/login" % GW_PID)), 20)
        self.assertEqual(broker.violation_lines(), [])
        log = daemon.log()
        self.assertNotIn("failed: code", log, "every request was acknowledged with code 200")
        self.assertEqual(log.count("malformed message"), 1, log)

    def test_onenet_legacy(self):
        procs = Procs(self)
        broker = Broker(procs, devices=[("12345", "5678", "SN-0001")], platform="legacy")
        sub = Subscriber(procs, broker, ["$dp"], name="dp.log", hex_payload=True)
        rsp = Subscriber(procs, broker, ["$crsp/#"], name="crsp.log")
        daemon = Daemon(procs, f"""
clouds:
  legacy: {{ platform: onenet-legacy, host: 127.0.0.1, port: {broker.port}, product_id: "12345", keepalive: 120s }}
buses:
  sim: {{ driver: sim }}
devices:
  - {{ name: boiler, cloud: legacy, bus: sim, unit: 2, device_id: "5678", key: SN-0001, interval: 1s,
       points: [ {{ name: temperature, area: holding, address: 7 }} ] }}
""")
        wait_for(lambda: len(sub.raw_messages("$dp")) >= 2, timeout=20, what="$dp messages")
        broker.publish("$creq/5bd3-uuid", "relay on")
        r = wait_for(lambda: rsp.json_messages("$crsp/5bd3-uuid"), timeout=10, what="$crsp reply")[-1][1]
        self.assertNotEqual(r["code"], 0)
        self.assertEqual(daemon.stop()[0], 0)
        types = []
        for payload in sub.raw_messages("$dp"):
            types.append(payload[0])
            self.assertEqual(int.from_bytes(payload[1:3], "big"), len(payload) - 3)
            body = json.loads(payload[3:])
            if payload[0] == 3:  # one sample set: {"stream": value}
                self.assertGreaterEqual(body["temperature"], 207)
            else:  # several waited for the rate limit (the first message waits one interval): type 1 with times
                self.assertEqual(payload[0], 1)
                (stream,) = body["datastreams"]
                self.assertEqual(stream["id"], "temperature")
                self.assertTrue(all(dp["value"] >= 207 and dp["at"] for dp in stream["datapoints"]))
        self.assertIn(3, types, "live data at the rate limit goes as type 3")
        self.assertEqual(broker.violation_lines(), [])

    def test_onenet_legacy_backlog_frames_fit_their_length(self):
        # 200 points every second while the broker is away: the backlog needs more than one
        # 65,535-byte $dp frame; every frame's 2-byte header must state its body's length (the
        # emulator checks it) and every sample set must arrive.
        procs = Procs(self)
        port = free_port()
        # 200 points a second: `at` has whole seconds, so one set per second is what a frame can carry
        # of each stream, and 12 s of them make more than a frame.
        points = ", ".join("{ name: stream_%03d, area: holding, address: %d }" % (i, i) for i in range(200))
        daemon = Daemon(procs, f"""
clouds:
  legacy: {{ platform: onenet-legacy, host: 127.0.0.1, port: {port}, product_id: "12345", keepalive: 120s }}
buses:
  sim: {{ driver: sim }}
devices:
  - {{ name: boiler, cloud: legacy, bus: sim, unit: 2, device_id: "5678", key: SN-0001, interval: 1s,
       points: [ {points} ] }}
""")
        time.sleep(12)  # about 12 sets x 200 values waiting (~100 KB of type 1 body)
        broker = Broker(procs, devices=[("12345", "5678", "SN-0001")], platform="legacy", port=port)
        # What the platform received, recorded by the emulator itself (hex: frames are binary).
        received = lambda: [bytes.fromhex(p) for _, topic, p in broker.received() if topic == "$dp"]
        # Drained: after large frames, one of what a second of live data makes (one set, ~4 KB).
        drained = lambda f=None: (lambda f: f and any(len(x) > 40000 for x in f) and len(f[-1]) < 30000)(received())
        wait_for(drained, timeout=90, what="the backlog to drain")
        self.assertEqual(daemon.stop()[0], 0)
        frames = received()
        self.assertEqual(broker.violation_lines(), [], "every frame's header states its body's length")
        bodies = [len(p) - 3 for p in frames if p[0] == 1]
        self.assertTrue(bodies and max(bodies) > 40000, "the backlog goes in large frames: %s" % bodies)
        self.assertTrue(all(b <= 65535 for b in bodies))
        times = []
        for p in frames:
            body = json.loads(p[3:])
            if p[0] == 1:
                streams = {s["id"]: s["datapoints"] for s in body["datastreams"]}
                self.assertEqual(len(streams), 200)
                at = [dp["at"] for dp in streams["stream_000"]]
                self.assertEqual(len(at), len(set(at)), "one value per stream and second in a frame")
                times += at
        self.assertGreater(len(times), 9, "the sets taken during the outage arrive with their times")

    def test_dashi_aiot(self):
        procs = Procs(self)
        broker = Broker(procs, devices=[("pk", "dev-7", "s3cret")], platform="aiot")
        sub = Subscriber(procs, broker, ["sys/#"])
        daemon = Daemon(procs, f"""
clouds:
  das: {{ platform: aiot, host: 127.0.0.1, port: {broker.port}, product_id: pk, token_method: sha256 }}
buses:
  sim: {{ driver: sim }}
devices:
  - {{ name: boiler, device_id: dev-7, cloud: das, bus: sim, unit: 3, key: s3cret, interval: 500ms,
       points: [ {{ name: WF, area: holding, address: 1, scale: 0.5 }} ] }}
""")
        up = "sys/pk/dev-7/thing/properties/up"
        wait_for(lambda: len(sub.json_messages(up)) >= 2, timeout=20, what="property reports")
        broker.publish("sys/pk/dev-7/thing/properties/set", '{"id":"125","version":"1.0","params":{"WF":"30.5"},"method":"thing.properties.set"}')
        r = wait_reply(sub, "sys/pk/dev-7/thing/properties/set/response")
        self.assertEqual((r["id"], r["method"]), ("125", "thing.properties.set"))
        self.assertNotEqual(r["code"], 200)
        self.assertEqual(daemon.stop()[0], 0)
        for _, m in sub.json_messages(up):
            self.assertEqual(m["method"], "thing.properties.up")
            self.assertGreaterEqual(m["params"]["WF"]["value"], 150.5)
            self.assertIn("time", m["params"]["WF"])
        self.assertEqual(broker.violation_lines(), [])
        self.assertRegex(broker.log(), r"as boiler\|securemode=3,signmethod=hmacsha256,timestamp=\d+\| \(p2, c1, k60, u'dev-7&pk'\)")

    def test_thingsboard_gateway(self):
        procs = Procs(self)
        broker = Broker(procs, devices=[("-", "-", "TOKEN123")], platform="thingsboard", rate=100)
        sub = Subscriber(procs, broker, ["v1/gateway/#"])
        daemon = Daemon(procs, f"""
clouds:
  tb: {{ platform: thingsboard, host: 127.0.0.1, port: {broker.port}, username: TOKEN123 }}
buses:
  sim: {{ driver: sim }}
devices:
  - {{ name: Device A, cloud: tb, bus: sim, unit: 1, interval: 300ms, points: [ {{ name: temperature, area: holding, address: 0 }} ] }}
  - {{ name: Device B, cloud: tb, bus: sim, unit: 2, interval: 300ms, points: [ {{ name: humidity, area: input, address: 4 }} ] }}
""")
        wait_for(lambda: len(sub.json_messages("v1/gateway/telemetry")) >= 3, timeout=20, what="telemetry")
        broker.publish("v1/gateway/rpc", '{"device":"Device A","data":{"id":41,"method":"toggle","params":{}}}')
        r = wait_for(lambda: [m for _, m in sub.json_messages("v1/gateway/rpc") if "id" in m], timeout=10, what="RPC reply")[-1]
        self.assertEqual((r["device"], r["id"], r["data"]["success"]), ("Device A", 41, False))
        self.assertEqual(daemon.stop()[0], 0)
        connects = [m["device"] for _, m in sub.json_messages("v1/gateway/connect")]
        self.assertEqual(sorted(connects), ["Device A", "Device B"])
        names = set()
        for _, m in sub.json_messages("v1/gateway/telemetry"):
            for device, samples in m.items():
                names.add(device)
                for smp in samples:
                    self.assertIn("ts", smp)
                    key = "temperature" if device == "Device A" else "humidity"
                    self.assertIn(key, smp["values"])
        self.assertEqual(names, {"Device A", "Device B"})
        self.assertEqual(broker.violation_lines(), [])
        self.assertRegex(broker.log(), r"as fieldlink-gateway \(p2, c1, k60, u'TOKEN123'\)")


class BrokerRestartTest(unittest.TestCase):
    def test_all_sessions_reconnect_within_login_limits(self):
        procs = Procs(self)
        pid, key = "469948", "kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI="
        broker = Broker(procs, devices=[(pid, "*", key)])
        devices = "".join(f"""
  - {{ name: dev{i}, cloud: onenet, bus: sim, unit: {i}, interval: 1s, points: [ {{ name: v, area: holding, address: 0 }} ] }}"""
                          for i in range(1, 11))
        daemon = Daemon(procs, f"""
clouds:
  onenet: {{ platform: onenet, host: 127.0.0.1, port: {broker.port}, product_id: "{pid}", product_key: {key} }}
buses:
  sim: {{ driver: sim }}
devices:{devices}
""")
        wait_for(lambda: daemon.log().count("connected to cloud onenet") == 10, timeout=20, what="10 sessions")
        broker.stop()
        time.sleep(3)
        restart = time.time()
        broker.start()
        sub = Subscriber(procs, broker, ["$sys/#"], name="after.log")
        wait_for(lambda: daemon.log().count("connected to cloud onenet again") == 10, timeout=60,
                 what="all 10 sessions to reconnect")
        wait_for(lambda: {tp.split("/")[2] for _, tp, _ in sub.messages()} >= {"dev%d" % i for i in range(1, 11)},
                 timeout=20, what="data from every device after the restart")
        self.assertEqual(daemon.stop()[0], 0)
        self.assertEqual(broker.violation_lines(), [], "reconnects must respect 3 logins per 5 s per device")
        # Samples taken while the broker was down were kept and delivered with their own times.
        ts = sorted(s["t"] for _, tp, p in sub.messages() for s in json.loads(p)["dp"]["v"] if tp.endswith("dev1/dp/post/json"))
        self.assertLess(ts[0], restart, "samples from the outage arrive after the restart")


if __name__ == "__main__":
    unittest.main()
