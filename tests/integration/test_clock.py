"""A clock without a battery (issue 19, item 5), on the real binary: fieldlinkd runs under
libfaketime with its wall clock three years behind while its monotonic and boot-time clocks run
true (FAKETIME_DONT_FAKE_MONOTONIC), polls the bundled Modbus simulator over TCP and publishes
OneNET thing-model properties to a broker whose emulator checks tokens against the true time.
After a while the fake clock is set right (a step, as NTP makes it):

- nothing is published stamped three years back: the samples taken before the step are held and
  go out once it comes, stamped with their true acquisition time, none lost, in order;
- the sessions, refused meanwhile (their tokens dated three years back had expired), log in again
  at once with fresh tokens instead of waiting out the backoff they earned;
- a later step back, then forward, of a clock that is right re-stamps nothing and keeps each
  device's samples in order.
Skipped where the kernel itself says the clock is synchronised (then it is trusted at once)."""
import ctypes
import ctypes.util
import json
import os
import time
import unittest

from harness import Broker, Daemon, Procs, Simulator, free_port, wait_for

PID, KEY = "469948", "kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI="
FAKETIME = [p for p in ("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
                        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1") if os.path.exists(p)]


def kernel_synced():
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    buf = ctypes.create_string_buffer(512)  # struct timex, larger than needed
    return libc.adjtimex(buf) not in (-1, 5)  # 5: TIME_ERROR, not synchronised


def stamps(broker, device):
    """(receive time, acquisition time ms) of every property the platform accepted, in order."""
    out = []
    for at, topic, payload in broker.received():
        if topic != "$sys/%s/%s/thing/property/post" % (PID, device) and \
                topic != "$sys/%s/%s/thing/history/post" % (PID, device):
            continue
        params = json.loads(payload).get("params")
        if isinstance(params, dict):
            out += [(at, p["time"]) for p in params.values() if "time" in p]
        else:
            out += [(at, s["time"]) for e in params for l in e["properties"].values() for s in l]
    return out


@unittest.skipUnless(FAKETIME, "libfaketime is not installed")
@unittest.skipIf(kernel_synced(), "the kernel says the clock is synchronised: nothing is held")
class ClockTest(unittest.TestCase):
    def test_a_clock_set_right_after_boot(self):
        procs = Procs(self)
        broker = Broker(procs, devices=[(PID, "meter", KEY)], rate=100)
        modbus = free_port()
        Simulator(procs, tcp_port=modbus, units=(1,), tick="100ms")
        offset = procs.write("faketime", "-3y\n")
        env = dict(os.environ, LD_PRELOAD=FAKETIME[0], FAKETIME_TIMESTAMP_FILE=offset, FAKETIME_NO_CACHE="1",
                   FAKETIME_DONT_FAKE_MONOTONIC="1",
                   ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0")
        t_start = time.time() * 1000
        daemon = Daemon(procs, f"""
clouds:
  onenet: {{ platform: onenet, protocol: thing-model, host: 127.0.0.1, port: {broker.port}, product_id: "{PID}" }}
buses:
  plc: {{ driver: modbus-tcp, host: 127.0.0.1, port: {modbus}, timeout: 1s }}
devices:
  - name: meter
    cloud: onenet
    bus: plc
    unit: 1
    key: {KEY}
    interval: 200ms
    points:
      - {{ name: counter, area: holding, address: 0, type: uint32 }}
""", env=env)
        wait_for(lambda: "cannot be trusted yet" in daemon.log(), timeout=15, what="the clock not trusted")
        time.sleep(8)  # polling, refused logins (expired tokens)
        self.assertEqual(stamps(broker, "meter"), [], "nothing published while the clock is wrong")
        self.assertIn("expired", broker.log() + procs.read("violations.log") + daemon.log())
        procs.write("faketime", "+0\n")  # NTP answers: the clock steps three years forward
        t_step = time.time() * 1000
        wait_for(lambda: "can be trusted now" in daemon.log(), timeout=10, what="the clock trusted after the step")
        wait_for(lambda: any(ts < t_step for _, ts in stamps(broker, "meter")) and
                 any(ts > t_step + 1000 for _, ts in stamps(broker, "meter")), timeout=20,
                 what="held and live samples published")
        got = stamps(broker, "meter")
        first_at = min(at for at, _ in got) * 1000
        # logged in at once after the step (the backoff earned before could reach 60 s)
        self.assertLess(first_at - t_step, 10000, "first publish %.1f s after the step" % ((first_at - t_step) / 1000))
        held = [ts for _, ts in got if ts < t_step]
        self.assertGreaterEqual(len(held), 30, "samples of the 8 s before the step")
        for _, ts in got:  # their true time: none from three years back, none from the future
            self.assertGreater(ts, t_start - 2000)
            self.assertLess(ts, time.time() * 1000 + 1000)
        # none lost before the step: polled every 200 ms, no hole over a second
        gaps = [b - a for a, b in zip(sorted(held), sorted(held)[1:]) if b - a > 1000]
        self.assertEqual(gaps, [])
        order = [ts for _, ts in got]
        self.assertEqual(order, sorted(order), "a device's samples keep their order")

        # A right clock stepped back an hour, then forward again: nothing is re-stamped, and the
        # samples published before stay as they were.
        before = len(got)
        procs.write("faketime", "-1h\n")
        wait_for(lambda: daemon.log().count("the wall clock stepped") >= 2, timeout=10, what="the step back")
        procs.write("faketime", "+0\n")
        wait_for(lambda: daemon.log().count("the wall clock stepped") >= 3, timeout=10, what="the step forward")
        time.sleep(2)
        self.assertEqual(stamps(broker, "meter")[:before], got)
        self.assertEqual(daemon.log().count("can be trusted now"), 1)
        self.assertEqual(daemon.stop()[0], 0, daemon.log())
        self.assertEqual([l for l in broker.violation_lines() if "expired" not in l], [])


if __name__ == "__main__":
    unittest.main()
