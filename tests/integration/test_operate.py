"""Reload on SIGHUP without losing queued data, and `fieldlink status`."""
import json
import os
import signal
import time
import unittest

from harness import BIN, Broker, Daemon, Procs, Simulator, Subscriber, free_port, run_cli, wait_for

PID, KEY = "469948", "kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI="


def config(broker_port, modbus_port, devices=("meter", "pump"), interval="250ms"):
    devs = "".join(f"""
  - {{ name: {name}, cloud: onenet, bus: plc, unit: {i + 1}, interval: {interval},
       points: [ {{ name: counter, area: holding, address: 0, type: uint32 }} ] }}""" for i, name in enumerate(devices))
    return f"""
clouds:
  onenet: {{ platform: onenet, host: 127.0.0.1, port: {broker_port}, product_id: "{PID}", product_key: {KEY} }}
buses:
  plc: {{ driver: modbus-tcp, host: 127.0.0.1, port: {modbus_port}, timeout: 300ms }}
devices:{devs}
"""


def counters(broker, device):
    out = []
    for _, topic, payload in broker.received():
        if topic.endswith("/%s/dp/post/json" % device):
            out += [s["v"] for s in json.loads(payload)["dp"]["counter"]]
    return out


class OperateTest(unittest.TestCase):
    def test_reload_keeps_queued_data_and_status_shows_the_queue(self):
        procs = Procs(self)
        broker = Broker(procs, devices=[(PID, "*", KEY)], persistent=True)
        modbus_port = free_port()
        Simulator(procs, tcp_port=modbus_port, units=(1, 2), tick="1s")
        daemon = Daemon(procs, config(broker.port, modbus_port))
        wait_for(lambda: counters(broker, "meter") and counters(broker, "pump"), timeout=30, what="data from both")
        first = counters(broker, "meter")[0]
        broker.stop()
        time.sleep(4)

        # During the outage the queue grows, and `fieldlink status` shows it.
        rc, out, _ = run_cli([os.path.join(BIN, "fieldlink"), "status", "--data-dir", daemon.data_dir])
        self.assertEqual(rc, 0, out)
        meter = [l for l in out.splitlines() if l.startswith("meter")][0].split()
        self.assertEqual(meter[2], "no")       # not connected
        self.assertGreater(int(meter[3]), 5)   # queued batches on disk
        self.assertGreater(float(meter[5]), 2)  # oldest queued age, seconds
        with open(os.path.join(daemon.data_dir, "metrics.prom")) as f:
            prom = f.read()
        self.assertIn('fieldlink_queued_batches{session="meter"}', prom)

        # An invalid file changes nothing.
        daemon.rewrite_config(config(broker.port, modbus_port).replace("interval: 250ms", "interval: soon"))
        daemon.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "still running the previous configuration" in daemon.log(), timeout=10, what="refused reload")
        self.assertIn("'soon' is not a duration", daemon.log())

        # A valid one without "pump": meter's queue survives, pump's is dropped and counted.
        daemon.rewrite_config(config(broker.port, modbus_port, devices=("meter",)))
        daemon.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "which is no longer configured, are dropped" in daemon.log(), timeout=15, what="the reload")
        self.assertIn("device 'pump', which is no longer configured", daemon.log())
        broker.start()
        target = first + 15
        wait_for(lambda: counters(broker, "meter") and max(counters(broker, "meter")) >= target, timeout=60,
                 what="meter to catch up")
        self.assertEqual(daemon.stop()[0], 0)
        got = set(counters(broker, "meter"))
        self.assertEqual([v for v in range(first, target) if v not in got], [], "no meter value lost across the reload")
        self.assertEqual(broker.violation_lines(), [])


if __name__ == "__main__":
    unittest.main()
