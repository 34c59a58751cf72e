"""A OneNET gateway with 10 sub-devices on a real Modbus TCP server, through a 30 s broker
outage: the backlog (more than 256 batches per message: 10 devices x 100) drains to zero
queued records after the reconnect, a restart sends nothing twice, and every sample the buses
read arrives; none twice, except a message the broker took in as it was stopped and could no
longer acknowledge (QoS 1 is at least once: that one goes again, the same message). The emulator enforces OneNET's thing-model rules (topology, pack and
history shapes, 1 message/s at the gateway's default rate) and records what it accepted."""
import json
import os
import re
import time
import unittest

from harness import Broker, Daemon, Procs, Simulator, free_port, wait_for

GW_PID, GW_KEY = "IHL2T99b8k", "rs2FaE5BuygJZkWKDA5okKt1RFpwOx53hbu6hwyCS4U="
SUB_PID, SUB_KEY = "SubPid01", "kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI="
SUBS = 10


def config(broker_port, modbus_port):
    subs = "".join("""
  - { name: meter-%02d, cloud: studio, bus: plc, unit: %d, via: gw01, product_id: %s, key: %s, interval: 200ms,
      points: [ { name: count, area: holding, address: 0, type: uint32 } ] }""" % (i, i, SUB_PID, SUB_KEY)
                   for i in range(1, SUBS + 1))
    return """
clouds:
  studio: { platform: onenet, protocol: thing-model, host: 127.0.0.1, port: %d, product_id: %s }
buses:
  plc: { driver: modbus-tcp, host: 127.0.0.1, port: %d, timeout: 200ms, retries: 0, backoff_max: 1s }
devices:
  - { name: gw01, cloud: studio, bus: plc, unit: 11, gateway: true, key: %s, interval: 200ms,
      points: [ { name: count, area: holding, address: 0, type: uint32 } ] }%s
""" % (broker_port, GW_PID, modbus_port, GW_KEY, subs)


def data_messages(broker):
    """Every data message the platform accepted: (unix time recorded, message id, [(device, time)])."""
    out = []
    for at, topic, payload in broker.received():
        if not topic.startswith("$sys/%s/gw01/thing/" % GW_PID) or not topic.endswith(("pack/post", "history/post")):
            continue
        message = json.loads(payload)
        got = []
        for entry in message["params"]:
            device = entry.get("identity", {}).get("deviceName", "gw01")
            value = entry["properties"]["count"]
            for s in value if isinstance(value, list) else [value]:
                got.append((device, s["time"]))
        out.append((at, message["id"], got))
    return out


def samples(broker):
    """Every (device, time) the platform accepted, with repeats."""
    return [s for _, _, got in data_messages(broker) for s in got]


def unexplained_repeats(messages, outage):
    """Samples the platform got twice for another reason than the outage itself. MQTT's QoS 1 is
    at least once: a message the broker took in just before it was stopped, whose PUBACK or
    platform answer never reached the gateway, goes again after the reconnect (the same message,
    the same id). Anything else sent twice is a fault: returned with where it was seen."""
    first = {}  # sample -> (time, id) of its first copy
    faults = []
    for at, mid, got in messages:
        for s in got:
            if s not in first:
                first[s] = (at, mid)
                continue
            t0, mid0 = first[s]
            resent = mid == mid0 and t0 <= outage[0] and at >= outage[1]
            if not resent:
                faults.append("%s: message %s at %.3f, again in message %s at %.3f (outage %.3f..%.3f)" %
                              (s, mid0, t0, mid, at, outage[0], outage[1]))
    return faults


def queued(daemon):
    try:
        with open(os.path.join(daemon.data_dir, "status.json")) as f:
            return json.load(f)["store"]["queued_batches"]
    except (OSError, ValueError, KeyError):
        return None


def polled_ok(log):
    """Successful polls per device, from the bus worker's summary at stop."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"device (\S+): \d+ polls, (\d+) ok", log)}


class GatewayOutageTest(unittest.TestCase):
    def test_backlog_drains_to_zero_and_a_restart_sends_nothing_twice(self):
        procs = Procs(self)
        broker = Broker(procs, devices=[(GW_PID, "gw01", GW_KEY), (SUB_PID, "*", SUB_KEY)], rate=1)
        modbus_port = free_port()
        sim = Simulator(procs, tcp_port=modbus_port, units=range(1, SUBS + 2))
        data_dir = procs.path("data")
        daemon = Daemon(procs, config(broker.port, modbus_port), data_dir=data_dir)
        wait_for(lambda: len({d for d, _ in samples(broker)}) == SUBS + 1, timeout=60, what="data from every device")

        stopped_at = time.time()
        broker.stop()
        time.sleep(30)  # 11 devices x 5 polls/s: ~1,650 batches queued on disk
        broker.start()
        outage = (stopped_at, time.time())
        # Stop the data at its source once the daemon is back, so the outbox can be seen empty.
        wait_for(lambda: "connected to cloud studio again" in daemon.log(), timeout=60, what="the reconnect")
        for unit in range(1, SUBS + 2):
            sim.cmd("off %d" % unit)
        wait_for(lambda: queued(daemon) == 0, timeout=120, step=0.5, what="the outbox to drain to zero")
        self.assertIn("drained: a backlog of", daemon.log())
        histories = [p for _, t, p in broker.received() if t.endswith("history/post")]
        self.assertTrue(any(sum(len(e["properties"]["count"]) for e in json.loads(p)["params"]) > 256 for p in histories),
                        "the backlog goes in messages of more than 256 batches (10 devices x 100)")
        rc, _ = daemon.stop()
        self.assertEqual(rc, 0)
        first_run = polled_ok(daemon.log())

        # A restart replays nothing (everything was acknowledged) and carries on.
        before = len(broker.received())
        for unit in range(1, SUBS + 2):
            sim.cmd("on %d" % unit)
        again = Daemon(procs, config(broker.port, modbus_port), name="fieldlinkd-2.log", data_dir=data_dir)
        wait_for(lambda: len(broker.received()) > before + 3, timeout=60, what="data after the restart")
        time.sleep(3)
        for unit in range(1, SUBS + 2):
            sim.cmd("off %d" % unit)
        wait_for(lambda: queued(again) == 0, timeout=60, step=0.5, what="the outbox to drain again")
        self.assertEqual(again.stop()[0], 0)
        self.assertNotIn("queued batch(es) from before", again.log())

        got = samples(broker)
        messages = data_messages(broker)
        self.assertEqual(unexplained_repeats(messages, outage)[:20], [], "no sample may be sent twice")
        resent = {mid for _, mid, _ in messages if sum(1 for _, m, _ in messages if m == mid) > 1}
        self.assertLessEqual(len(resent), 20, "only what was in flight (max_inflight 20) at the outage goes twice")
        second_run = polled_ok(again.log())
        for device in first_run:
            arrived = sum(1 for d, _ in set(got) if d == device)
            self.assertEqual(arrived, first_run[device] + second_run.get(device, 0),
                             "every sample of %s read by the bus arrives exactly once" % device)
        # The platform keeps the topology across its restart (the emulator's state file): after
        # the outage and the daemon's restart, topo/get finds every sub-device; none is added twice.
        self.assertEqual(len([t for _, t, _ in broker.received() if t.endswith("/thing/sub/topo/add")]), SUBS)
        self.assertEqual(broker.violation_lines(), [])


if __name__ == "__main__":
    unittest.main()
