"""platform: sparkplug against a real mosquitto and the bundled Modbus TCP simulator, seen by a
test host application: every message the gateway publishes is decoded with Eclipse Tahu's
sparkplug-payload (npm, a decoder nobody on the project wrote) and checked against the
specification's rules (topics, bdSeq of births and deaths, seq order, birth before data, aliases
and datatypes of the births, QoS and retain flags, the will). The host's commands (NCMD rebirth,
DCMD writes) are encoded by Tahu too. The host goes offline and online; the broker restarts; the
gateway is killed: nothing polled is lost."""
import json
import os
import re
import shutil
import signal
import subprocess
import time
import unittest

from harness import Broker, Daemon, Procs, Simulator, free_port, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_PATH = os.environ.get("NODE_PATH", "/var/cache/fieldlink-test/node_modules")
GROUP, NODE, HOST = "Plant1", "gw1", "scada"
PREFIX = "spBv1.0/%s/" % GROUP


def node():
    exe = shutil.which("node") or shutil.which("nodejs")
    if not exe or not os.path.isdir(os.path.join(NODE_PATH, "sparkplug-payload")):
        raise AssertionError("node and sparkplug-payload are needed (scripts/deps.sh --test installs them)")
    return exe


def tahu(script, lines):
    out = subprocess.run([node(), os.path.join(HERE, "..", "sparkplug", script)], input="\n".join(lines) + "\n",
                         capture_output=True, text=True, timeout=120, env=dict(os.environ, NODE_PATH=NODE_PATH))
    if out.returncode != 0:
        raise AssertionError(script + ": " + out.stderr)
    return out.stdout.splitlines()


class Host:
    """The test's host application: records every spBv1.0 message (time, topic, QoS, retain,
    bytes) on a durable session, decodes them with Tahu, and publishes STATE and commands."""

    def __init__(self, procs, broker):
        self.procs, self.broker = procs, broker
        before = broker.log().count("Received SUBSCRIBE")
        procs.start(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-c", "-i", "test-host",
                     "-F", "%U %t %q %r %x", "-t", "spBv1.0/#"], "host.log")
        wait_for(lambda: broker.log().count("Received SUBSCRIBE") > before, what="the host's subscription")
        self.cache = {}

    def raw(self):
        out = []
        for line in self.procs.read("host.log").splitlines():
            parts = line.split(" ")
            if len(parts) == 5:
                out.append((float(parts[0]), parts[1], int(parts[2]), parts[3] == "1", parts[4]))
        return out

    def messages(self):
        """[(time, topic, qos, retained, decoded)]; STATE payloads (JSON) stay text."""
        raw = self.raw()
        todo = [h for (_, t, _, _, h) in raw if "/STATE/" not in t and h not in self.cache]
        for h, line in zip(todo, tahu("tahu_decode.js", todo) if todo else []):
            self.cache[h] = json.loads(line)
        return [(at, t, q, r, bytes.fromhex(h).decode() if "/STATE/" in t else self.cache[h]) for (at, t, q, r, h) in raw]

    def of(self, kind, device=None):
        topic = PREFIX + kind + "/" + NODE + ("/" + device if device else "")
        return [m for m in self.messages() if m[1] == topic]

    def wait(self, kind, count, device=None, timeout=15):
        return wait_for(lambda: len(self.of(kind, device)) >= count and self.of(kind, device), timeout=timeout,
                        what="%d %s %s" % (count, kind, device or ""))

    def publish(self, topic, payload, qos=0, retain=False):
        args = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.broker.port), "-q", str(qos), "-t", topic, "-s"]
        if retain:
            args.append("-r")
        subprocess.run(args, input=payload, check=True, timeout=10)

    def state(self, online, ts):
        self.publish("spBv1.0/STATE/" + HOST, json.dumps({"online": online, "timestamp": ts}).encode(), 1, True)

    def command(self, kind, metrics, device=None):
        hex_ = tahu("tahu_encode.js", [json.dumps({"timestamp": int(time.time() * 1000), "metrics": metrics})])[0]
        self.publish(PREFIX + kind + "/" + NODE + ("/" + device if device else ""), bytes.fromhex(hex_))


def metric(message, name=None, alias=None):
    for m in message[4]["metrics"]:
        if (name is not None and m["name"] == name) or (alias is not None and m["alias"] == alias):
            return m
    return None


# The value field of each datatype (the specification's table).
FIELD = dict({t: "intValue" for t in ("Int8", "Int16", "Int32", "UInt8", "UInt16", "UInt32")},
             Int64="longValue", UInt64="longValue", Float="floatValue", Double="doubleValue",
             Boolean="booleanValue", String="stringValue")


def check_rules(test, messages, same_process=True):
    """The specification's rules over everything the node published, in order."""
    seq, bd_seq, born, aliases, alive = None, None, False, {}, set()
    for at, topic, qos, retained, p in messages:
        level = topic.split("/")
        if level[1] == "STATE" or level[2] in ("NCMD", "DCMD"):
            continue  # the host's
        with test.subTest(at=at, topic=topic):
            test.assertEqual(level[0], "spBv1.0")
            test.assertEqual((level[1], level[3]), (GROUP, NODE))
            kind = level[2]
            test.assertFalse(retained, "only the host's STATE is retained")
            if kind != "NDEATH":  # the will is QoS 1 (checked where the broker sends it); one said at a stop 0
                test.assertEqual(qos, 0, "births, data and device deaths at QoS 0")
            if kind == "NDEATH":
                test.assertIsNone(p["seq"], "a death certificate has no seq")
                test.assertEqual(metric((0, 0, 0, 0, p), "bdSeq")["type"], "Int64")
                if born:
                    test.assertEqual(int(metric((0, 0, 0, 0, p), "bdSeq")["value"]), bd_seq,
                                     "NDEATH's bdSeq is the NBIRTH's")
                born, alive = False, set()
                continue
            if kind == "NBIRTH":
                test.assertEqual(p["seq"], 0)
                bd = metric((0, 0, 0, 0, p), "bdSeq")
                test.assertEqual(bd["type"], "Int64")
                test.assertIsNotNone(metric((0, 0, 0, 0, p), "Node Control/Rebirth"))
                # A rebirth keeps the number; a new connection takes the next one (a new process
                # starts elsewhere: checked where the test knows it is the same process).
                if bd_seq is not None and int(bd["value"]) != bd_seq and same_process:
                    test.assertEqual(int(bd["value"]), (bd_seq + 1) % 256, "bdSeq counts the connections")
                bd_seq, born, seq, alive = int(bd["value"]), True, 0, set()
                continue
            test.assertTrue(born, "no %s before NBIRTH" % kind)
            test.assertEqual(p["seq"], (seq + 1) % 256, "seq counts every message after NBIRTH")
            seq = p["seq"]
            device = level[4]
            if kind == "DBIRTH":
                aliases[device] = {m["alias"]: m for m in p["metrics"]}
                test.assertEqual(len(aliases[device]), len(p["metrics"]), "aliases are unique")
                alive.add(device)
            elif kind == "DDEATH":
                alive.discard(device)
            elif kind == "DDATA":
                test.assertIn(device, alive, "DDATA only while the device is born")
                for m in p["metrics"]:
                    test.assertEqual(m["name"], "", "data goes by alias")
                    test.assertIn(m["alias"], aliases[device])
                    test.assertIsNotNone(m["ts"], "every metric of DDATA has its timestamp")
                    test.assertEqual(m["type"], aliases[device][m["alias"]]["type"])
                    test.assertEqual(m["field"], FIELD[aliases[device][m["alias"]]["type"]],
                                     "the value is in the field of the datatype its birth gave")
            else:
                test.fail("unexpected message kind " + kind)


def config(broker_port, modbus_port, primary_host=True):
    return """
clouds:
  plant:
    platform: sparkplug
    host: 127.0.0.1
    port: %d
    group_id: %s
    edge_node_id: %s%s
buses:
  plc: { driver: modbus-tcp, host: 127.0.0.1, port: %d, timeout: 200ms, retries: 0, backoff_max: 1s }
devices:
  - name: pump
    cloud: plant
    bus: plc
    unit: 1
    interval: 200ms
    points:
      - { name: count, area: holding, address: 0, type: uint32 }
      - { name: setpoint, area: holding, address: 10, writable: true, min: 0, max: 1000 }
      - { name: temp, area: holding, address: 11, type: int16, scale: 0.1 }
      - { name: Motor/running, area: coil, address: 3 }
  - name: meter
    cloud: plant
    bus: plc
    unit: 2
    interval: 200ms
    points:
      - { name: count, area: input, address: 0, type: uint32 }
      - { name: energy, area: holding, address: 20, type: float32 }
""" % (broker_port, GROUP, NODE, "\n    primary_host: " + HOST if primary_host else "", modbus_port)


def polled_ok(log):
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"device (\S+): \d+ polls, (\d+) ok", log)}


def count_samples(messages, device, alias):
    """Acquisition times of `alias` in the device's DDATA (a set: a resent sample counts once)."""
    return {m["ts"] for (_, t, _, _, p) in messages if t == PREFIX + "DDATA/" + NODE + "/" + device
            for m in p["metrics"] if m["alias"] == alias}


class SparkplugTest(unittest.TestCase):
    def setUp(self):
        node()  # fails early without the oracle

    def test_primary_host_commands_presence_and_will(self):
        procs = Procs(self)
        broker = Broker(procs)
        modbus = free_port()
        sim = Simulator(procs, tcp_port=modbus, units=(1, 2))
        sim.cmd("set 2 holding 20 17096 0")  # energy: 100.0 as float32 (0x42C80000)
        host = Host(procs, broker)
        daemon = Daemon(procs, config(broker.port, modbus))
        # No STATE yet: connected and polling, but nothing is born and no data goes.
        wait_for(lambda: "connected" in daemon.log(), what="the connection")
        time.sleep(1.5)
        self.assertEqual(host.of("NBIRTH"), [])
        self.assertEqual(host.of("DDATA", "pump"), [])

        t1 = int(time.time() * 1000)
        host.state(True, t1)
        nbirth = host.wait("NBIRTH", 1)[0]
        dbirth = host.wait("DBIRTH", 1, "pump")[0]
        host.wait("DBIRTH", 1, "meter")
        types = {m["name"]: m["type"] for m in dbirth[4]["metrics"]}
        self.assertEqual(types, {"count": "UInt32", "setpoint": "UInt16", "temp": "Double",
                                 "Motor/running": "Boolean"})
        meter_birth = host.of("DBIRTH", "meter")[0]
        self.assertEqual(metric(meter_birth, "energy")["type"], "Float")
        self.assertAlmostEqual(float(metric(meter_birth, "energy")["value"]), 100.0)
        alias = {m["name"]: m["alias"] for m in dbirth[4]["metrics"]}
        # What was polled while the host was away comes after the births, as history.
        data = host.wait("DDATA", 3, "pump")
        history = [d for d in data if all(m["historical"] for m in d[4]["metrics"])]
        self.assertTrue(history, "the held samples are sent as historical")
        self.assertTrue(all(m["ts"] < nbirth[4]["timestamp"] for d in history for m in d[4]["metrics"]))
        wait_for(lambda: any(not m["historical"] for d in host.of("DDATA", "pump") for m in d[4]["metrics"]),
                 what="live data after the backlog")

        # NCMD rebirth: every birth again, same bdSeq, seq from 0.
        host.command("NCMD", [{"name": "Node Control/Rebirth", "type": "Boolean", "value": True}])
        second = host.wait("NBIRTH", 2)[1]
        self.assertEqual(metric(second, "bdSeq")["value"], metric(nbirth, "bdSeq")["value"])
        host.wait("DBIRTH", 2, "pump")

        # DCMD by alias on a writable metric: written, read back, published as DDATA.
        host.command("DCMD", [{"alias": alias["setpoint"], "type": "UInt16", "value": 123}], "pump")
        wait_for(lambda: sim.get(1, "holding", 10) == [123], what="the write on the device")
        wait_for(lambda: any(m["alias"] == alias["setpoint"] and m["value"] == "123"
                             for d in host.of("DDATA", "pump") for m in d[4]["metrics"]), what="the read-back DDATA")
        # Refused: a metric not writable, a value outside min/max, an unknown metric and device.
        count_before = sim.get(1, "holding", 0, 2)
        host.command("DCMD", [{"name": "count", "type": "UInt32", "value": 7}], "pump")
        host.command("DCMD", [{"name": "setpoint", "type": "UInt16", "value": 5000}], "pump")
        host.command("DCMD", [{"name": "nothing", "type": "UInt16", "value": 1}], "pump")
        host.command("DCMD", [{"name": "setpoint", "type": "UInt16", "value": 1}], "ghost")
        wait_for(lambda: daemon.log().count("DCMD refused") >= 1, what="refusals logged")
        time.sleep(1)
        self.assertEqual(sim.get(1, "holding", 10), [123])
        self.assertNotEqual(sim.get(1, "holding", 0, 2), [0, 7])
        self.assertGreaterEqual(count_before[1], 0)
        with open(os.path.join(daemon.data_dir, "status.json")) as f:
            status = json.load(f)
        self.assertGreaterEqual(sum(s["commands_refused"] for s in status["sessions"]), 4)

        # A unit that stops answering is a DDEATH; answering again, a DBIRTH.
        births = len(host.of("DBIRTH", "meter"))
        sim.cmd("off 2")
        host.wait("DDEATH", 1, "meter")
        sim.cmd("on 2")
        reborn = host.wait("DBIRTH", births + 1, "meter")[-1]
        self.assertFalse(metric(reborn, "energy")["null"], "a device born again carries the values read before")
        self.assertAlmostEqual(float(metric(reborn, "energy")["value"]), 100.0)

        # The host goes offline: NDEATH, a new connection, nothing born until it is back.
        ndeaths = len(host.of("NDEATH"))
        host.state(False, t1 + 1000)
        death = host.wait("NDEATH", ndeaths + 1)[-1]
        self.assertEqual(metric(death, "bdSeq")["value"], metric(nbirth, "bdSeq")["value"])
        time.sleep(2)
        self.assertEqual(len(host.of("NBIRTH")), 2)
        t3 = t1 + 2000
        host.state(True, t3)
        third = host.wait("NBIRTH", 3)[2]
        self.assertEqual(int(metric(third, "bdSeq")["value"]), (int(metric(nbirth, "bdSeq")["value"]) + 1) % 256)
        # A stale offline STATE (older than the online one taken) changes nothing.
        host.state(False, t3 - 500)
        time.sleep(1)
        self.assertEqual(len(host.of("NDEATH")), ndeaths + 1)

        # Killed: the broker publishes the will, an NDEATH with the last NBIRTH's bdSeq.
        daemon.proc.send_signal(signal.SIGKILL)
        daemon.proc.wait(10)
        will = host.wait("NDEATH", ndeaths + 2)[-1]
        self.assertEqual(metric(will, "bdSeq")["value"], metric(third, "bdSeq")["value"])
        self.assertEqual(will[2], 1, "the will is QoS 1")
        time.sleep(0.5)
        self.assertEqual(len(host.of("NDEATH")), ndeaths + 2)
        check_rules(self, host.messages())

    def test_nothing_lost_across_broker_restart_and_kill(self):
        procs = Procs(self)
        # The host's durable session gets what was published while it reconnected after the
        # broker's restart (QoS 0 included, as a host's broker is set up to).
        broker = Broker(procs, persistent=True, extra=["queue_qos0_messages true"])
        modbus = free_port()
        Simulator(procs, tcp_port=modbus, units=(1, 2))
        host = Host(procs, broker)
        cfg = config(broker.port, modbus, primary_host=False)
        # Run 1: the broker restarts under it (QoS 0 data the broker did not confirm goes again);
        # a clean stop.
        start1 = time.time() * 1000
        first = Daemon(procs, cfg, name="run1.log")
        host.wait("DDATA", 5, "pump")
        broker.stop()
        time.sleep(3)
        broker.start()
        wait_for(lambda: len(host.of("NBIRTH")) >= 2, timeout=30, what="births after the broker restart")
        time.sleep(2)
        self.assertEqual(first.stop()[0], 0)
        end1 = time.time() * 1000
        polled1 = polled_ok(first.log())
        # Run 2: killed. Run 3 sends what both left behind.
        start2 = time.time() * 1000
        second = Daemon(procs, cfg, name="run2.log")
        time.sleep(3)
        kill_at = time.time() * 1000
        second.proc.send_signal(signal.SIGKILL)
        second.proc.wait(10)
        third = Daemon(procs, cfg, name="run3.log")
        wait_for(lambda: len(host.of("NBIRTH")) >= 4, timeout=30, what="run 3's births")
        time.sleep(4)
        self.assertEqual(third.stop()[0], 0)

        messages = host.messages()
        check_rules(self, messages, same_process=False)
        for device in ("pump", "meter"):
            birth = [p for (_, t, _, _, p) in messages if t == PREFIX + "DBIRTH/" + NODE + "/" + device][0]
            alias = {m["name"]: m["alias"] for m in birth["metrics"]}["count"]
            got = sorted(count_samples(messages, device, alias))
            with self.subTest(device=device):
                # Run 1: every sample polled arrived (a sample sent again counts once).
                self.assertEqual(len([ts for ts in got if start1 <= ts <= end1]), polled1[device])
                # Run 2: until the kill, no sample missing (one every 200 ms).
                run2 = [ts for ts in got if start2 <= ts <= kill_at]
                self.assertGreater(len(run2), 5)
                gaps = [(a, b) for a, b in zip(run2, run2[1:]) if b - a > 1000]
                self.assertEqual(gaps, [], "samples missing in run 2")
        # What run 2 left behind went after run 3's births, as history.
        self.assertTrue(any(m["historical"] and start2 <= m["ts"] <= kill_at
                            for (_, t, _, _, p) in messages if "/DDATA/" in t for m in p["metrics"]))


if __name__ == "__main__":
    unittest.main()
