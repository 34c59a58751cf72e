"""The platform emulator itself: it must catch what the real platforms refuse, from their documents,
whatever the daemon does (plain mosquitto_pub/mosquitto_sub clients play the device)."""
import json
import subprocess
import unittest
import urllib.parse

from harness import Broker, Procs, onenet_token, wait_for

PID, KEY = "469948", "kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI="


def pub(broker, device, token, topic, payload, extra=()):
    """One PUBLISH as a OneNET device; returns mosquitto_pub's exit status and output."""
    r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-V", "mqttv311", "-i", device,
                        "-u", PID, "-P", token, "-t", topic, "-m", payload, "-q", "1"] + list(extra),
                       capture_output=True, text=True, timeout=10)
    return r.returncode, r.stdout + r.stderr


class EmulatorTest(unittest.TestCase):
    def setUp(self):
        self.procs = Procs(self)
        self.broker = Broker(self.procs, devices=[(PID, "*", KEY)])

    def still_serving(self):
        rc, out = pub(self.broker, "dev-ok", onenet_token(PID, "dev-ok", KEY), "$sys/%s/dev-ok/dp/post/json" % PID,
                      '{"id":1,"dp":{"t1":[{"v":1}]}}')
        self.assertEqual(rc, 0, "the emulator keeps serving: " + out)

    def test_malformed_numbers_in_a_token_are_refused_not_thrown(self):
        good = onenet_token(PID, "dev1", KEY)
        for et in ("12ab", "", "99999999999999999999999", "-5"):
            bad = good.replace("et=2524579200", "et=" + urllib.parse.quote(et, safe=""))
            rc, _ = pub(self.broker, "dev1", bad, "$sys/%s/dev1/dp/post/json" % PID, '{"id":1,"dp":{"a":[{"v":1}]}}')
            self.assertNotEqual(rc, 0, "et=%r must be refused" % et)
        self.assertTrue(self.broker.proc.poll() is None, "the broker did not crash")
        self.still_serving()

    def test_a_token_whose_values_are_not_url_encoded_is_refused(self):
        raw = urllib.parse.unquote(onenet_token(PID, "dev1", KEY))  # res with '/', sign with '+', '/', '='
        rc, _ = pub(self.broker, "dev1", raw, "$sys/%s/dev1/dp/post/json" % PID, '{"id":1,"dp":{"a":[{"v":1}]}}')
        self.assertNotEqual(rc, 0)
        self.assertTrue(any("not URL-encoded" in l for l in self.broker.violation_lines()),
                        self.broker.violation_lines())
        self.still_serving()

    def test_a_misspelt_topic_is_a_violation_and_disconnects(self):
        rc, _ = pub(self.broker, "dev1", onenet_token(PID, "dev1", KEY), "$sys/%s/dev1/thing/property/pots" % PID,
                    '{"id":"1","params":{}}')
        self.assertIn("undocumented topic $sys/%s/dev1/thing/property/pots" % PID,
                      "\n".join(self.broker.violation_lines()))

    def test_wildcard_subscriptions_only_from_the_fifth_level(self):
        for dev, topic in (("d1", "$sys/%s/d1/thing/#"), ("d2", "$sys/%s/d2/dp/post/json/+"), ("d3", "$sys/%s/d3/#"),
                           ("d4", "$sys/%s/+/thing/#")):
            subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(self.broker.port), "-V", "mqttv311",
                            "-i", dev, "-u", PID, "-P", onenet_token(PID, dev, KEY), "-t", topic % PID, "-W", "1"],
                           capture_output=True, timeout=10)
        self.assertEqual(self.broker.violation_lines(), [
            "d3: subscribe with a wildcard at level 4 in $sys/%s/d3/# (OneNET allows them from the 5th level)" % PID,
            "d4: subscribe to a foreign topic $sys/%s/+/thing/#" % PID])

    def test_a_will_message_is_a_violation(self):
        token = onenet_token(PID, "dev1", KEY)
        topic = "$sys/%s/dev1/dp/post/json" % PID
        self.assertEqual(pub(self.broker, "dev1", token, topic, '{"id":1,"dp":{"a":[{"v":1}]}}')[0], 0)
        self.assertEqual(self.broker.violation_lines(), [], "no will: no violation")
        pub(self.broker, "dev1", token, topic, '{"id":2,"dp":{"a":[{"v":1}]}}',
            extra=["--will-topic", topic, "--will-payload", '{"id":3,"dp":{"a":[{"v":0}]}}'])
        self.assertEqual(self.broker.violation_lines(),
                         ["dev1: will message set (OneNET refuses a will; clean session, no will)"])

    def test_datapoints_are_checked_and_answered_like_the_platform(self):
        # (The accepted/rejected answers go to the device itself; the daemon's tests see them.)
        token = onenet_token(PID, "dev1", KEY)
        topic = "$sys/%s/dev1/dp/post/json" % PID
        self.assertEqual(pub(self.broker, "dev1", token, topic, '{"id":7,"dp":{"temp":[{"v":1,"t":1700000000}]}}')[0], 0)
        self.assertEqual(self.broker.violation_lines(), [])
        for bad, why in (('{"id":"8","dp":{"temp":[{"v":1}]}}', "id must be an integer"),
                         ('{"id":9,"dp":{"bad name!":[{"v":1}]}}', "stream name"),
                         ('{"id":11,"dp":{"temp":[{"v":1,"t":1700000000000}]}}', "t must be Unix seconds")):
            pub(self.broker, "dev1", token, topic, bad)
            wait_for(lambda: any(why in l for l in self.broker.violation_lines()), timeout=5, what=why)

    def test_thingsboard_refuses_payloads_over_64_kb(self):
        procs = Procs(self)
        broker = Broker(procs, devices=[("-", "-", "gw-token")], platform="thingsboard")
        r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-V", "mqttv311", "-i", "gw",
                            "-u", "gw-token", "-t", "v1/gateway/telemetry", "-s", "-q", "1"],
                           input=json.dumps({"d": [{"ts": 1, "values": {"x": "y" * 70000}}]}), capture_output=True,
                           text=True, timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(any("max_payload_size" in l for l in broker.violation_lines()), broker.violation_lines())


if __name__ == "__main__":
    unittest.main()
