"""Store-and-forward on the real binary: the simulator's counter (holding 0..1) ticks every two
seconds and is polled four times a second, so every counter value is read several times and a lost
value is visible. OneNET datapoints through the emulator broker, which also checks the rate while
backlogs replay. (Datapoints carry whole seconds: of one stream's values in the same second the
newest goes, so a counter value must last a whole second to be sure to be seen: two seconds do.)"""
import json
import os
import random
import re
import signal
import time
import unittest

from harness import BIN, Broker, Daemon, Procs, Simulator, Subscriber, free_port, run_cli, wait_for

PID, KEY = "469948", "kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI="


def config(broker_port, modbus_port, extra_gateway="", interval="250ms", points=None):
    pts = points or "[ { name: counter, area: holding, address: 0, type: uint32 } ]"
    return f"""
gateway:
  log_level: info
{extra_gateway}
clouds:
  onenet: {{ platform: onenet, host: 127.0.0.1, port: {broker_port}, product_id: "{PID}", product_key: {KEY} }}
buses:
  plc: {{ driver: modbus-tcp, host: 127.0.0.1, port: {modbus_port}, timeout: 300ms }}
devices:
  - {{ name: meter, cloud: onenet, bus: plc, unit: 1, interval: {interval}, points: {pts} }}
"""


def samples(source, stream="counter"):
    """(t, value) of every sample of `stream` a subscriber got, or (a Broker) the platform received."""
    out = []
    messages = source.received() if isinstance(source, Broker) else source.messages()
    for _, topic, payload in messages:
        if topic.endswith("/meter/dp/post/json"):
            out += [(s["t"], s["v"]) for s in json.loads(payload)["dp"].get(stream, [])]
    return out


class StoreTest(unittest.TestCase):
    def setUp(self):
        self.procs = Procs(self)
        self.broker = Broker(self.procs, devices=[(PID, "*", KEY)], persistent=True)
        self.sub = Subscriber(self.procs, self.broker, ["$sys/#"], persistent=True)
        self.modbus_port = free_port()
        self.sim = Simulator(self.procs, tcp_port=self.modbus_port, units=(1,), tick="2s")

    def assert_every_counter_value(self, got, first, last):
        values = {v for _, v in got}
        missing = [v for v in range(first, last + 1) if v not in values]
        self.assertEqual(missing, [], "counter values never delivered")
        # Original acquisition times: ordered by time, the counter never goes backwards.
        by_time = [v for _, v in sorted(got)]
        self.assertEqual(by_time, sorted(by_time))

    def test_broker_down_for_60_seconds(self):
        daemon = Daemon(self.procs, config(self.broker.port, self.modbus_port))
        wait_for(lambda: len(samples(self.sub)) >= 8, timeout=30, what="live data")
        first = samples(self.sub)[0][1]
        self.broker.stop()
        t_down = time.time()
        time.sleep(60)
        self.broker.start()
        t_up = time.time()
        sub2 = Subscriber(self.procs, self.broker, ["$sys/#"], name="after.log")
        # Wait until values read after the restart arrive and the backlog has drained.
        wait_for(lambda: samples(sub2) and max(v for _, v in samples(sub2)) >= first + 35, timeout=120,
                 what="live data after the restart")
        got = samples(self.sub) + samples(sub2)
        last = max(v for _, v in got)
        self.assert_every_counter_value(got, first, last)
        outage = [(t, v) for t, v in samples(sub2) if t_down + 1 < t < t_up - 1]
        # (one a second: the newest of each second)
        self.assertGreater(len(outage), 50, "samples taken during the outage keep their acquisition time")
        self.assertEqual(daemon.stop()[0], 0)
        self.assertEqual(self.broker.violation_lines(), [], "the replay respects OneNET's rate and login rules")

    def test_kill_9_every_few_seconds_while_the_broker_restarts(self):
        data_dir = self.procs.path("kill9-data")
        cfg = config(self.broker.port, self.modbus_port)
        daemon = Daemon(self.procs, cfg, name="d0.log", data_dir=data_dir)
        wait_for(lambda: len(samples(self.broker)) >= 4, timeout=30, what="first data")
        first = samples(self.broker)[0][1]
        t_end = time.time() + 60
        kills = 0
        while time.time() < t_end:
            time.sleep(random.uniform(1.5, 4.0))
            daemon.proc.send_signal(signal.SIGKILL)
            daemon.proc.wait(5)
            kills += 1
            daemon = Daemon(self.procs, cfg, name="d%d.log" % kills, data_dir=data_dir)  # restarted at once
            if kills in (4, 10):  # the broker restarts too, while the daemon keeps polling
                self.broker.stop()
                time.sleep(2)
                self.broker.start()
        final_target = self.sim_counter() + 3
        wait_for(lambda: any(v >= final_target for _, v in samples(self.broker)), timeout=90, what="catch-up")
        self.assertEqual(daemon.stop()[0], 0)
        got = samples(self.broker)  # what the platform received, recorded by the broker itself
        self.assert_every_counter_value(got, first, final_target)
        print("kill -9: %d kills, %d samples received by the platform, none missing" % (kills, len(got)))
        self.assertEqual(self.broker.violation_lines(), [])

    def sim_counter(self):
        # The counter is the simulator's tick count: read it the way the gateway does.
        rc, out, _ = run_cli(["mbpoll", "-m", "tcp", "-p", str(self.modbus_port), "-a", "1", "-0", "-r", "0", "-c", "2",
                              "-t", "4", "-1", "127.0.0.1"])
        regs = [int(line.split(":")[1]) for line in out.splitlines() if line.startswith("[")]
        return regs[0] << 16 | regs[1]

    def test_disk_budget_during_an_outage_drops_exactly_the_oldest(self):
        # 99 values every 100 ms (~4 KB/s on disk) against a 64 KB budget and a 30 s outage.
        points = "[ " + ", ".join("{ name: r%d, area: holding, address: %d }" % (i, i) for i in range(2, 100)) + \
                 ", { name: counter, area: holding, address: 0, type: uint32 } ]"
        daemon = Daemon(self.procs, config(self.broker.port, self.modbus_port, "  store_max_bytes: 64KB",
                                           interval="100ms", points=points))
        wait_for(lambda: samples(self.sub), timeout=30, what="live data")
        self.broker.stop()
        t_down = time.time()
        time.sleep(30)
        self.broker.start()
        sub2 = Subscriber(self.procs, self.broker, ["$sys/#"], name="after.log")
        wait_for(lambda: samples(sub2) and max(v for _, v in samples(sub2)) >= self.sim_counter() - 1, timeout=90,
                 what="live data after the restart")
        time.sleep(5)  # part of the backlog drains; what is left is counted as queued
        rc, _ = daemon.stop()
        self.assertEqual(rc, 0)
        log = daemon.log()
        self.assertEqual(log.count("over its budget"), 1, "logged once per episode")
        polls = int(re.search(r"device meter: (\d+) polls, (\d+) ok", log).group(2))
        dropped = int(re.search(r"(\d+) samples dropped by the budget", log).group(1))
        queued = int(re.search(r"store: (\d+) batch\(es\) queued on disk", log).group(1))
        superseded = int(re.search(r"(\d+) values superseded within their second", log).group(1))
        # (the first subscriber reconnects by itself after the restart: count it up to the outage only)
        msgs = [m for m in self.sub.messages() if m[0] < t_down] + sub2.messages()
        received = sum(len(json.loads(p)["dp"]["counter"]) for _, tp, p in msgs if tp.endswith("/meter/dp/post/json"))
        self.assertGreater(dropped, 0)
        self.assertEqual(dropped % 99, 0)
        # Every polled sample set is accounted for: delivered, left out for a newer set of the same
        # second (datapoints times are whole seconds), dropped by the budget (99 values each), or
        # still queued on disk at shutdown; nothing else.
        self.assertEqual(superseded % 99, 0)
        self.assertEqual(received + superseded // 99 + dropped // 99 + queued, polls)
        # The oldest went: what was delivered from the outage is its most recent part.
        outage = sorted(v for _, v in samples(sub2))
        self.assertGreater(outage[0], samples(self.sub)[0][1] + 5)
        self.assertEqual(self.broker.violation_lines(), [])

    def test_corrupt_store_file_at_start(self):
        data_dir = self.procs.path("corrupt-data")
        os.makedirs(data_dir)
        with open(os.path.join(data_dir, "outbox.db"), "wb") as f:
            f.write(os.urandom(8192))
        daemon = Daemon(self.procs, config(self.broker.port, self.modbus_port), data_dir=data_dir)
        wait_for(lambda: len(samples(self.sub)) >= 3, timeout=30, what="data despite the corrupt file")
        self.assertEqual(daemon.stop()[0], 0)
        self.assertRegex(daemon.log(), r"is not a valid store \(.*\); moved aside to .* with .* queued batch\(es\)")
        self.assertTrue(any(n.startswith("outbox.db.corrupt-") for n in os.listdir(data_dir)))
        self.assertRegex(daemon.log(), r"store: .*[,;] 1 corrupt")

    def test_unusable_data_dir_is_a_clear_error(self):
        daemon = Daemon(self.procs, config(self.broker.port, self.modbus_port), data_dir="/dev/null/fieldlink")
        self.assertEqual(daemon.proc.wait(10), 1)
        self.assertIn("cannot create data_dir /dev/null/fieldlink: Not a directory", daemon.log())


if __name__ == "__main__":
    unittest.main()
