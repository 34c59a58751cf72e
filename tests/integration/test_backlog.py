"""While a backlog drains from disk, the newest data keeps flowing: after an outage longer than the
in-memory window, messages from the disk backlog and from the live window interleave (neither
waits for the other), and nothing is lost. ThingsBoard's gateway API through the emulator, which
records what the platform received."""
import json
import time
import unittest

from harness import Broker, Daemon, Procs, wait_for


def received(broker):
    """[(arrival, [(ts, value)...])] of every telemetry message the platform got."""
    out = []
    for arrival, topic, payload in broker.received():
        if topic == "v1/gateway/telemetry":
            out.append((arrival, [(s["ts"], s["values"]["n"]) for s in json.loads(payload).get("boiler", [])]))
    return out


def gaps(messages):
    """Missing reads as (first, last) ranges: the sim value (unit*100 + address + reads) grows by
    one per read."""
    values = sorted(v for _, msg in messages for _, v in msg)
    return [(a + 1, b - 1) for a, b in zip(values, values[1:]) if b - a > 1]


class BacklogTest(unittest.TestCase):
    def test_live_data_is_not_starved_by_a_backlog(self):
        procs = Procs(self)
        broker = Broker(procs, devices=[("-", "-", "TOKEN")], platform="thingsboard", rate=2)
        daemon = Daemon(procs, f"""
clouds:
  tb: {{ platform: thingsboard, host: 127.0.0.1, port: {broker.port}, username: TOKEN, max_rate: 2 }}
buses:
  s: {{ driver: sim }}
devices:
  - {{ name: boiler, cloud: tb, bus: s, unit: 1, interval: 10ms, points: [ {{ name: n, area: holding, address: 0 }} ] }}
""")
        wait_for(lambda: received(broker), timeout=20, what="first telemetry")
        broker.stop()
        time.sleep(30)  # ~3000 sample sets: more than the 2000 kept in memory
        t_up = time.time()
        broker.start()
        wait_for(lambda: any(ts / 1000 > t_up + 2 for _, msg in received(broker) for ts, _ in msg), timeout=60,
                 what="data read after the restart")
        wait_for(lambda: "drained" in daemon.log(), timeout=60, what="the store to report the backlog drained")
        # "drained" means the queue is back near what live data keeps (<= 1% of the peak), so the
        # last records of the backlog may still be on their way: wait until every read up to the
        # newest has arrived (a lost record never does, and the wait fails).
        try:
            wait_for(lambda: not gaps(received(broker)), timeout=30, what="every read before the newest")
        except AssertionError:
            self.fail("reads that never arrived (first, last): %s" % gaps(received(broker)))
        self.assertEqual(daemon.stop()[0], 0)

        after = [(arrival, msg) for arrival, msg in received(broker) if arrival >= t_up]
        oldest_first = [min(ts for ts, _ in msg) for _, msg in after if msg]
        # Interleaving: some message carries newer data than a message that arrives after it.
        self.assertTrue(any(a > b for a, b in zip(oldest_first, oldest_first[1:])),
                        "backlog and live messages should take turns, not run one after the other")
        # Nothing lost: the sim value (unit*100 + address + reads) increases by one per read.
        self.assertEqual(gaps(received(broker)), [], "every read arrives")
        self.assertEqual(broker.violation_lines(), [])


if __name__ == "__main__":
    unittest.main()
