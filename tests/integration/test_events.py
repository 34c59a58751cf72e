"""Events and attributes (issue 8, item 5) on the real binary, against the emulator, with the device
on real Modbus TCP (the bundled simulator, whose registers and unit the test changes):

- an alarm bit declared as an event (trigger: rising) goes once when it rises, with the event's
  other parameter (Ua, trigger: none), and not when it stays up or falls;
- a point declared as an attribute goes when it changes, not with every poll;
- the device's link event goes when its unit stops answering and when it answers again;
- OneNET thing model: thing/event/post, or events inside pack/post and history/post;
  DaShi: thing/event/up, answered on its /response; ThingsBoard: events as telemetry, client
  attributes on v1/gateway/attributes, and after a reconnect to a platform that lost them,
  attributes/request finds them missing and they are sent again.
The emulator checks every shape against the platforms' documents (violations must stay empty)."""
import json
import time
import unittest

from harness import Broker, Daemon, Procs, Simulator, free_port, wait_for

PID, KEY = "469948", "kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI="

POINTS = """
    link_event: link
    points:
      - { name: count, area: holding, address: 0, type: uint32 }
      - { name: alarm, area: holding, address: 10, report: event, event: over, trigger: rising }
      - { name: Ua, area: holding, address: 11, report: event, event: over, trigger: none }
      - { name: mode, area: holding, address: 12, report: attribute }
"""


def onenet_events(received, dev):
    """[(event, parameters)] the platform received from `dev`, in order, and every mode value."""
    events, modes = [], []
    for _, topic, payload in received:
        if not topic.startswith(f"$sys/{PID}/{dev}/thing/") or topic.endswith("reply"):
            continue
        j = json.loads(payload)
        kind = topic.rsplit("/thing/", 1)[1]
        params = j.get("params")
        entries = {"event/post": [{"events": params}], "property/post": [{"properties": params}]}.get(kind, params)
        for e in entries if isinstance(entries, list) else []:
            for name, samples in e.get("events", {}).items():
                for s in samples if isinstance(samples, list) else [samples]:
                    events.append((name, s["value"]))
            m = e.get("properties", {}).get("mode")
            for s in m if isinstance(m, list) else ([m] if m else []):
                modes.append(s["value"])
    return events, modes


def dashi_events(received, dev):
    events, modes = [], []
    for _, topic, payload in received:
        j = json.loads(payload)
        if topic == f"sys/pk/{dev}/thing/event/up":
            events.append((j["identifier"], j["params"]["value"]))
        elif topic == f"sys/pk/{dev}/thing/properties/up" and "mode" in j["params"]:
            modes.append(j["params"]["mode"]["value"])
    return events, modes


def thingsboard_events(received, dev):
    """ThingsBoard has no events: their parameters arrive as telemetry. Modes: client attributes."""
    events, modes = [], []
    for _, topic, payload in received:
        j = json.loads(payload)
        if topic == "v1/gateway/telemetry":
            for sample in j.get(dev, []):
                v = sample["values"]
                if "alarm" in v:
                    events.append(("over", {"alarm": v["alarm"], "Ua": v["Ua"]}))
                if "online" in v:
                    events.append(("link", {"online": v["online"]}))
                if "mode" in v:
                    modes.append(("telemetry", v["mode"]))
        elif topic == "v1/gateway/attributes" and "mode" in j.get(dev, {}):  # (not offline_reason)
            modes.append(j[dev]["mode"])
    return events, modes


class EventsTest(unittest.TestCase):
    def setUp(self):
        self.procs = Procs(self)
        self.modbus_port = free_port()
        self.sim = Simulator(self.procs, tcp_port=self.modbus_port, units=(1,))
        self.sim.cmd("set 1 holding 10 0 0 5")  # alarm 0, Ua 0, mode 5

    def scenario(self, broker, cloud, device_line, parse, dev="m1"):
        self.config_text = f"""
clouds:
  c: {cloud}
buses:
  plc: {{ driver: modbus-tcp, host: 127.0.0.1, port: {self.modbus_port}, timeout: 300ms, retries: 0 }}
devices:
  - name: {dev}
    cloud: c
    bus: plc
    unit: 1
    interval: 300ms{device_line}""" + POINTS
        daemon = Daemon(self.procs, self.config_text)
        def got():  # an attribute may go twice at connect: its first reading, and attributes/request's answer
            events, modes = parse(broker.received(), dev)
            return events, [m for i, m in enumerate(modes) if i == 0 or modes[i - 1] != m]
        wait_for(lambda: got()[1] == [5], timeout=20, what="the attribute's first reading")
        self.assertEqual(got()[0], [("link", {"online": True})], "first reading: the link is up, alarm 0 is quiet")
        self.sim.cmd("set 1 holding 10 1 251")  # the alarm rises with Ua 251
        wait_for(lambda: len(got()[0]) == 2, timeout=20, what="the over event")
        self.sim.cmd("set 1 holding 11 252")  # alarm stays up: no event
        self.sim.cmd("set 1 holding 12 7")  # the attribute changes
        wait_for(lambda: got()[1] == [5, 7], timeout=20, what="the attribute's change")
        self.sim.cmd("set 1 holding 10 0")  # the alarm falls: a rising trigger stays quiet
        self.sim.cmd("off 1")
        wait_for(lambda: len(got()[0]) == 3, timeout=20, what="the link event (down)")
        self.sim.cmd("on 1")
        wait_for(lambda: len(got()[0]) == 4, timeout=20, what="the link event (up)")
        self.assertEqual(daemon.stop()[0], 0)
        events, modes = got()
        self.assertEqual(events, [("link", {"online": True}), ("over", {"alarm": 1, "Ua": 251}),
                                  ("link", {"online": False}), ("link", {"online": True})])
        self.assertEqual(modes, [5, 7], "the attribute only when it changed")
        self.assertEqual(broker.violation_lines(), [])
        return daemon

    def test_onenet_thing_model(self):
        broker = Broker(self.procs, devices=[(PID, "*", KEY)], platform="onenet", rate=3)
        self.scenario(broker, f'{{ platform: onenet, protocol: thing-model, host: 127.0.0.1, port: {broker.port}, '
                              f'product_id: "{PID}", product_key: {KEY}, max_rate: 3 }}', "", onenet_events)
        kinds = {t.rsplit("/thing/", 1)[1] for _, t, _ in broker.received()}
        self.assertIn("pack/post", kinds, "events with properties in one set")

    def test_dashi(self):
        broker = Broker(self.procs, devices=[("pk", "m1", "s3cret")], platform="aiot", rate=10)
        self.scenario(broker, f"{{ platform: aiot, host: 127.0.0.1, port: {broker.port}, product_id: pk }}",
                      "\n    key: s3cret", dashi_events)

    def test_thingsboard(self):
        broker = Broker(self.procs, devices=[("-", "-", "TOKEN")], platform="thingsboard", rate=10)
        cloud = f"{{ platform: thingsboard, host: 127.0.0.1, port: {broker.port}, username: TOKEN }}"
        daemon = self.scenario(broker, cloud, "", thingsboard_events)
        # A platform that lost the client attributes gets them again after a reconnect: the
        # emulator forgets them with a broker restart, and attributes/request finds them missing.
        modes = lambda: thingsboard_events(broker.received(), "m1")[1]
        requests = lambda: [t for _, t, _ in broker.received() if t == "v1/gateway/attributes/request"]
        daemon = Daemon(self.procs, self.config_text, name="fieldlinkd-2.log")
        # A start reports every attribute's first reading (the platform already holds it).
        wait_for(lambda: len(modes()) > 2 and len(requests()) == 2, timeout=20, what="the restart's reading")
        time.sleep(1)
        broker.stop()
        sent = len(modes())
        broker.start()
        wait_for(lambda: len(requests()) == 3, timeout=30, what="attributes/request after the reconnect")
        wait_for(lambda: len(modes()) > sent, timeout=20, what="the attribute sent again")
        self.assertEqual(modes()[sent:], [7], "the value the platform lost, once")
        self.assertEqual(daemon.stop()[0], 0)
        self.assertEqual(broker.violation_lines(), [])


if __name__ == "__main__":
    unittest.main()
