"""Data the platform answers is finished by that answer, not by PUBACK (issue 8, item 3): on the
real binary against the emulator, for OneNET's thing model (.../reply), OneNET datapoints
(dp/post/json/accepted|rejected) and DaShi (.../response).

The emulator answers every third data message with the platform's transient failure (busy) and
refuses for good every message carrying the property `bogus`. Device `meter` must still deliver
every reading (the busy ones go again), device `odd` (which carries `bogus`) must have its
records dropped, counted per device and reason, logged once, and never sent twice. Answers that
are not JSON, carry no id or name an unknown id are counted and finish nothing."""
import json
import os
import unittest

from harness import BIN, Broker, Daemon, Procs, run_cli, wait_for

PID, KEY = "469948", "kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI="

PLATFORMS = {
    "thing-model": dict(
        broker=dict(devices=[(PID, "*", KEY)], platform="onenet"),
        cloud=f'{{ platform: onenet, protocol: thing-model, host: 127.0.0.1, port: {{port}}, product_id: "{PID}", '
              f'product_key: {KEY} }}',
        device_keys="",
        data=lambda dev: f"$sys/{PID}/{dev}/thing/",
        answer=lambda dev: f"$sys/{PID}/{dev}/thing/property/post/reply",
        reason="code 309 identifier not exist"),
    "datapoints": dict(
        broker=dict(devices=[(PID, "*", KEY)], platform="onenet"),
        cloud=f'{{ platform: onenet, host: 127.0.0.1, port: {{port}}, product_id: "{PID}", product_key: {KEY} }}',
        device_keys="",
        data=lambda dev: f"$sys/{PID}/{dev}/dp/post/json",
        answer=lambda dev: f"$sys/{PID}/{dev}/dp/post/json/accepted",
        reason="err_code 98 Illegal Data"),
    "dashi": dict(
        broker=dict(devices=[("pk", "meter", "s3cret"), ("pk", "odd", "s3cret")], platform="aiot"),
        cloud="{ platform: aiot, host: 127.0.0.1, port: {port}, product_id: pk, token_method: sha256 }",
        device_keys=", key: s3cret",
        data=lambda dev: f"sys/pk/{dev}/thing/properties/up",
        answer=lambda dev: f"sys/pk/{dev}/thing/properties/up/response",
        reason="code 460 request parameter error!"),
}


def values(message):
    """Every (time, value) of point n in a data message, whichever platform's shape."""
    j = json.loads(message)
    out = []
    if "dp" in j:  # datapoints
        return [(s.get("t"), s["v"]) for s in j["dp"].get("n", [])]
    params = j.get("params", {})
    for entry in params if isinstance(params, list) else [{"properties": params}]:
        v = entry.get("properties", {}).get("n")
        for s in v if isinstance(v, list) else ([v] if v else []):
            out.append((s["time"], s["value"]))
    return out


class AnswersTest(unittest.TestCase):
    def run_platform(self, name):
        p = PLATFORMS[name]
        procs = Procs(self)
        broker = Broker(procs, **p["broker"], extra=["plugin_opt_busy 3", "plugin_opt_unknown_property bogus"])
        daemon = Daemon(procs, f"""
clouds:
  c: {p["cloud"].replace("{port}", str(broker.port))}
buses:
  s: {{ driver: sim }}
devices:
  - {{ name: meter, cloud: c, bus: s, unit: 1, interval: 2s{p["device_keys"]},
       points: [ {{ name: n, area: holding, address: 0 }} ] }}
  - {{ name: odd, cloud: c, bus: s, unit: 2, interval: 2s{p["device_keys"]},
       points: [ {{ name: n, area: holding, address: 0 }}, {{ name: bogus, area: holding, address: 1 }} ] }}
""")

        def sent(dev):
            return [(t, payload) for _, t, payload in broker.received() if t.startswith(p["data"](dev))
                    and not t.endswith(("reply", "accepted", "rejected", "response"))
                    and "/sub/" not in t]

        def meter_values():
            return sorted({v for _, payload in sent("meter") for _, v in values(payload)})

        def gaps():
            vs = meter_values()
            return [(a + 1, b - 1) for a, b in zip(vs, vs[1:]) if b - a > 1]

        def status(dev):
            try:
                with open(os.path.join(daemon.data_dir, "status.json")) as f:
                    return next(s for s in json.load(f)["sessions"] if s["name"] == dev)
            except (OSError, ValueError, StopIteration):
                return None

        # Busy answers make the meter send some of its messages again.
        wait_for(lambda: (status("meter") or {}).get("answers_retried", 0) >= 2, timeout=60,
                 what="two messages sent again after a busy answer")
        wait_for(lambda: (status("odd") or {}).get("records_rejected", 0) >= 3, timeout=60,
                 what="three refused records of odd")

        # Bad answers: not JSON, no id, an id nobody waits for.
        before = status("meter")
        for bad in ["not json", '{"code":200}', '{"id":"987654","code":200}' if name != "datapoints"
                    else '{"id":987654}']:
            broker.publish(p["answer"]("meter"), bad)
        wait_for(lambda: status("meter")["malformed"] >= before["malformed"] + 2
                 and status("meter")["answers_unknown"] >= before["answers_unknown"] + 1,
                 timeout=20, what="bad answers counted")

        # Every reading of the meter arrives: the busy ones went again.
        newest = max(meter_values())
        try:
            wait_for(lambda: max(meter_values()) >= newest + 2 and not gaps(), timeout=60,
                     what="every meter reading")
        except AssertionError:
            self.fail("meter readings that never arrived (first, last): %s" % gaps())
        self.assertEqual(daemon.stop()[0], 0)

        # The meter's retries are the same messages again (same id and payload).
        payloads = [payload for _, payload in sent("meter")]
        self.assertLess(len(set(payloads)), len(payloads), "busy messages go again unchanged")
        # odd's messages were refused for good: each sent once, its records counted and dropped.
        odd = [payload for _, payload in sent("odd")]
        self.assertEqual(len(set(odd)), len(odd), "a refused message is never sent again")
        final = status("odd")
        self.assertEqual([(r["device"], r["reason"]) for r in final["rejected"]], [("odd", p["reason"])])
        self.assertGreaterEqual(final["rejected"][0]["records"], 3)
        _, out, _ = run_cli([os.path.join(BIN, "fieldlink"), "status", "--data-dir", daemon.data_dir])
        self.assertIn("refused by cloud c: device odd: ", out)
        log = daemon.log()
        self.assertEqual(log.count("the platform refused message"), 1, "a refusal is logged once per kind")
        self.assertEqual(log.count("awaits no answer"), 1, "an unknown answer is logged once per kind")
        self.assertIn(p["reason"], log)
        self.assertEqual(broker.violation_lines(), [])

    def test_onenet_thing_model(self):
        self.run_platform("thing-model")

    def test_onenet_datapoints(self):
        self.run_platform("datapoints")

    def test_dashi(self):
        self.run_platform("dashi")


if __name__ == "__main__":
    unittest.main()
