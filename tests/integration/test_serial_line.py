"""The serial-line driver (issue 9, item 4) on the real binary: ASCII sensors on socat pty pairs,
fed and answered by this test, published per point to a plain broker.

- a streaming sensor (NMEA-style frames, fields by a pattern's named groups): its values arrive;
  a corrupt frame, a frame with a wrong checksum, an over-long line and a line that does not match
  are dropped (their values never published) and the frames after them are read; a field the
  frames lack is bad alone;
- a sentence broken off without its line end (sensor reset) is dropped and the sentence after it
  read (issue 19, item 2); every dropped frame is counted by reason in the stop line and in
  /metrics; a frame that streams in while a poll waits is stamped when it arrived, not when the
  poll began;
- the pty removed (socat killed) and recreated: the bus reports its link down once, reopens the
  port when it is back, and the values come again;
- a polled sensor line (key=value answers with an 8-bit sum, two units asked with `{unit}` in the
  poll string): one request per poll, whatever the number of fields; a unit that does not answer
  and a field that is not a number leave the others alone;
- configuration errors name the option or the field and what was expected;
- `fieldlink ports` lists what libserialport enumerates, and a real UART (/dev/ttyS0, where the
  machine has one) is opened and configured through libserialport, not only ptys through termios."""
import json
import os
import re
import subprocess
import threading
import time
import unittest

from harness import BIN, PLUGINS, Broker, Daemon, Procs, Subscriber, free_port, http_get, pty_pair, run_cli, wait_for


def nmea(body):
    x = 0
    for c in body.encode():
        x ^= c
    return "$%s*%02X\r\n" % (body, x)


def sum8(body):
    return "%s%02X\r\n" % (body, sum(body.encode()) & 0xFF)


class Feeder:
    """Writes frames to the sensor side of a pty pair from a thread, every `period` seconds;
    survives the pty going away and reopens it when it is back."""

    def __init__(self, path, period=0.05):
        self.path, self.period = path, period
        self.extra = []  # frames (bytes) sent once, before the next regular one
        self.n = 0
        self.stop = False
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def inject(self, data):
        with self.lock:
            self.extra.append(data)

    def run(self):
        fd = -1
        while not self.stop:
            try:
                if fd < 0:
                    fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY)
                with self.lock:
                    extra, self.extra = self.extra, []
                for e in extra:
                    os.write(fd, e)
                self.n += 1
                os.write(fd, nmea("WX,T=%.1f,H=%d" % (20 + (self.n % 50) / 10, 40 + self.n % 7)).encode())
            except OSError:
                if fd >= 0:
                    os.close(fd)
                fd = -1
            time.sleep(self.period)
        if fd >= 0:
            os.close(fd)


class Responder:
    """Answers the polls of a sensor line: `#<unit>R\\r` -> key=value pairs with an 8-bit sum.
    Unit 1 answers; unit 2 is switched off."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        self.requests = []
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        buf = b""
        n = 0
        while not self.stop:
            try:
                buf += os.read(self.fd, 256)
            except OSError:
                return
            while b"\r" in buf:
                req, buf = buf.split(b"\r", 1)
                self.requests.append((time.time(), req.decode(errors="replace")))
                if req == b"#1R":
                    n += 1
                    os.write(self.fd, sum8("T=%d.5 P=1013 X=abc " % (10 + n % 20)).encode())


class SerialLineTest(unittest.TestCase):
    def test_streaming_sensor_bad_frames_and_the_port_coming_back(self):
        procs = Procs(self)
        gw, dev, socat = pty_pair(procs, "wx", with_process=True)
        broker = Broker(procs)
        sub = Subscriber(procs, broker, ["fl/#"])
        feeder = Feeder(dev)
        self.addCleanup(setattr, feeder, "stop", True)
        daemon = Daemon(procs, f"""
clouds:
  c: {{ platform: mqtt, host: 127.0.0.1, port: {broker.port}, topic: "fl/{{device}}/{{point}}", payload: "{{value}}" }}
buses:
  wx:
    driver: serial-line
    device: {gw}
    baud: 115200
    start: "$"
    terminator: "\\\\r\\\\n"
    checksum: nmea
    max_frame: 64
    pattern: 'T=(?<temp>[-0-9.]+),H=(?<hum>\\d+)(?:,P=(?<press>\\d+))?'
    timeout: 1s
    backoff_max: 1s
devices:
  - name: w1
    cloud: c
    bus: wx
    interval: 100ms
    points:
      - {{ name: temp, field: temp }}
      - {{ name: hum, field: hum, scale: 0.01 }}
      - {{ name: press, field: press }}
""")

        def values(point):
            return [(t, float(p)) for t, topic, p in sub.messages() if topic == "fl/w1/" + point]

        wait_for(lambda: len(values("temp")) >= 10, timeout=20, what="streamed temperatures")
        first = values("hum")
        self.assertTrue(first and all(0.40 <= v <= 0.46 for _, v in first), first[:5])

        # Bad frames, each followed by good ones: none of their values goes out.
        feeder.inject(nmea("WX,T=999.0,H=41").replace("WX", "WY", 1).encode())  # corrupted after its checksum
        feeder.inject(b"$WX,T=555.0,H=42*00\r\n")  # a wrong checksum
        feeder.inject(b"$" + b"X" * 500 + b"T=777.0,H=43\r\n")  # over-long
        feeder.inject(nmea("WX,temperature unknown").encode())  # a good checksum, no match
        t_bad = time.time()
        wait_for(lambda: len([t for t, _ in values("temp") if t > t_bad + 0.5]) >= 5, timeout=10,
                 what="temperatures after the bad frames")
        temps = [v for _, v in values("temp")]
        for bad in (999.0, 555.0, 777.0):
            self.assertNotIn(bad, temps)
        self.assertTrue(all(20 <= v < 25 for v in temps), sorted(set(temps))[-3:])
        self.assertEqual(values("press"), [], "a field the frames lack is never sent")
        # ... and it does not take the other points with it
        self.assertGreater(len(values("hum")), 10)

        # The pty goes away (the adapter unplugged) and comes back under another /dev/pts number.
        old = os.path.realpath(gw)
        socat.terminate()
        socat.wait(5)
        wait_for(lambda: "link down" in daemon.log(), timeout=10, what="link down")
        held = os.openpty()  # takes the freed /dev/pts number: the port comes back under another
        self.addCleanup(lambda: [os.close(fd) for fd in held])
        time.sleep(3)  # several reopen attempts while it is gone
        t_gone = time.time()
        self.assertEqual(len([t for t, _ in values("temp") if t > t_gone - 1]), 0)
        gw2, dev2, socat2 = pty_pair(procs, "wx", with_process=True)
        self.assertEqual(gw2, gw)
        self.assertNotEqual(os.path.realpath(gw), old, "the port is back under another name")
        t_back = time.time()
        wait_for(lambda: len([t for t, _ in values("temp") if t > t_back]) >= 5, timeout=15,
                 what="temperatures after the port came back")
        self.assertIn("link up again", daemon.log())
        log = daemon.log()
        self.assertEqual(log.count("bus wx: link down"), 1, log)
        rc, _ = daemon.stop()
        self.assertEqual(rc, 0)
        feeder.stop = True
        socat2.terminate()

    def test_broken_off_sentences_counted_drops_and_arrival_stamps(self):
        procs = Procs(self)
        gw, dev = pty_pair(procs, "wx")
        broker = Broker(procs)
        sub = Subscriber(procs, broker, ["fl/#"])
        http = free_port()
        daemon = Daemon(procs, f"""
gateway:
  http: "127.0.0.1:{http}"
clouds:
  c: {{ platform: mqtt, host: 127.0.0.1, port: {broker.port}, topic: "fl/{{device}}/{{point}}", payload: "{{value}} {{ts_ms}}" }}
buses:
  wx:
    driver: serial-line
    device: {gw}
    baud: 115200
    start: "$"
    terminator: "\\r\\n"
    checksum: nmea
    max_frame: 64
    pattern: 'T=(?<temp>[-0-9.]+),H=(?<hum>\d+)'
    timeout: 3s
devices:
  - {{ name: w1, cloud: c, bus: wx, interval: 100ms, points: [ {{ name: temp, field: temp }} ] }}
""")
        fd = os.open(dev, os.O_RDWR | os.O_NOCTTY)
        self.addCleanup(os.close, fd)
        sent = {}  # temperature -> when its frame's last byte was written (wall clock, ms)
        # A slow weather station: a sentence every 1.2 s, so each poll waits for the next one.
        # Before every third, a sentence broken off without its CR/LF (the station reset).
        for i in range(12):
            t = 21.0 + i / 10
            if i % 3 == 1:
                os.write(fd, b"$WX,T=99.9,H=4")
            os.write(fd, nmea("WX,T=%.1f,H=45" % t).encode())
            sent[round(t, 1)] = time.time() * 1000
            if i == 5:  # and one with a wrong checksum, one that does not match, one too long
                os.write(fd, b"$WX,T=55.5,H=42*00\r\n" + nmea("WX,no temperature").encode() + b"$" + b"X" * 100 + b"\r\n")
            time.sleep(1.2)
        wait_for(lambda: len(sub.messages()) >= 10, timeout=10, what="10 temperatures")
        metrics = http_get(f"http://127.0.0.1:{http}/metrics")[1]
        self.assertEqual(daemon.stop()[0], 0)
        got = {}
        for _, topic, payload in sub.messages():
            value, ts = payload.split()
            got[round(float(value), 1)] = int(ts)
        self.assertNotIn(99.9, got)
        self.assertNotIn(55.5, got)
        # The sentence after each broken-off one is read (before: both were lost).
        after_broken = [round(21.0 + i / 10, 1) for i in range(12) if i % 3 == 1 and i < 10]
        for t in after_broken:
            self.assertIn(t, got, "the sentence after a broken-off one was lost: %s" % sorted(got))
        # Stamped when it arrived (the poll began up to 1.2 s before).
        for t, ts in got.items():
            self.assertLess(abs(ts - sent[t]), 400, "T=%s stamped %d ms from its arrival" % (t, ts - sent[t]))
        log = daemon.log()
        m = re.search(r"bus wx: (\d+) frames ok, (\d+) frames bad checksum, (\d+) frames no match, "
                      r"(\d+) frames too long, (\d+) frames broken off", log)
        self.assertTrue(m, log)
        ok, checksum, no_match, too_long, broken = (int(x) for x in m.groups())
        self.assertGreaterEqual(ok, 10)
        self.assertEqual((checksum, no_match, too_long, broken), (1, 1, 1, 4), m.group(0))
        self.assertIn('fieldlink_bus_driver_events_total{bus="wx",event="frames_broken_off"} 4', metrics)

    def test_polled_sensor_line_with_two_units(self):
        procs = Procs(self)
        gw, dev = pty_pair(procs, "line")
        responder = Responder(dev)
        self.addCleanup(setattr, responder, "stop", True)
        broker = Broker(procs)
        sub = Subscriber(procs, broker, ["fl/#"])
        daemon = Daemon(procs, f"""
clouds:
  c: {{ platform: mqtt, host: 127.0.0.1, port: {broker.port}, topic: "fl/{{device}}/{{point}}", payload: "{{value}}" }}
buses:
  line:
    driver: serial-line
    device: {gw}
    baud: 9600
    mode: poll
    poll: "#{{unit}}R\\\\r"
    format: kv
    keys: "T P X"
    checksum: sum8
    timeout: 300ms
    retries: 0
devices:
  - name: s1
    cloud: c
    bus: line
    unit: 1
    interval: 200ms
    points:
      - {{ name: t, field: T }}
      - {{ name: p, field: P, scale: 0.1 }}
      - {{ name: x, field: X }}
  - name: s2
    cloud: c
    bus: line
    unit: 2
    interval: 200ms
    points:
      - {{ name: t, field: T }}
""")

        def values(device, point):
            return [(t, float(p)) for t, topic, p in sub.messages() if topic == "fl/%s/%s" % (device, point)]

        wait_for(lambda: len(values("s1", "t")) >= 10, timeout=20, what="polled values of unit 1")
        t0 = time.time()
        time.sleep(3)
        t1 = time.time()
        rc, _ = daemon.stop()
        self.assertEqual(rc, 0)
        polls = [v for t, v in values("s1", "t") if t0 <= t <= t1]
        self.assertGreaterEqual(len(polls), 8, "unit 1 keeps its rate while unit 2 does not answer")
        self.assertTrue(all(10.5 <= v <= 29.5 for v in polls), polls)
        self.assertTrue(all(v == 101.3 for _, v in values("s1", "p")))
        self.assertEqual(values("s1", "x"), [], "a field that is not a number is bad alone")
        self.assertEqual(values("s2", "t"), [])
        # one request per poll of unit 1, though it has three fields
        asked = [r for t, r in responder.requests if t0 <= t <= t1 and r == "#1R"]
        self.assertLessEqual(abs(len(asked) - len(polls)), 2, (len(asked), len(polls)))
        self.assertIn("#2R", {r for _, r in responder.requests})
        log = daemon.log()
        self.assertIn("field 'X' is 'abc', not a number", log)
        self.assertIn("no frame within 300ms of the poll", log)

    def test_configuration_errors(self):
        procs = Procs(self)

        def check(bus_extra, points="[{ name: t, field: temp }]"):
            path = procs.write("bad.yaml", f"""
clouds:
  c: {{ platform: mqtt, host: 127.0.0.1, port: 1883, topic: "fl/{{device}}/{{point}}" }}
buses:
  wx: {{ driver: serial-line, device: /dev/null{bus_extra} }}
devices:
  - {{ name: w1, cloud: c, bus: wx, points: {points} }}
""")
            p = subprocess.run([os.path.join(BIN, "fieldlinkd"), "--check", "--config", path, "--plugin-dir", PLUGINS],
                               capture_output=True, text=True, timeout=30)
            return p.returncode, p.stdout + p.stderr

        rc, out = check(", pattern: 'T=(?<temp>\\S+)'")
        self.assertEqual(rc, 0, out)
        rc, out = check(", pattern: 'T=(?<temp>\\S+'")
        self.assertEqual(rc, 2, out)
        self.assertIn("pattern: missing closing parenthesis at offset", out)
        rc, out = check(", pattern: 'T=(\\S+)'")
        self.assertIn("pattern: has no named group", out)
        rc, out = check(", pattern: 'T=(?<temp>\\S+) H=(?<hum>\\S+)'", "[{ name: t, field: tmp }]")
        self.assertEqual(rc, 2, out)
        self.assertIn("points[0].field: 'tmp' is not a field of this bus; its fields: temp, hum", out)
        rc, out = check(", format: kv")
        self.assertIn("keys: required with format kv", out)
        rc, out = check(", mode: poll, pattern: '(?<temp>.*)'")
        self.assertIn("poll: required with mode poll", out)
        rc, out = check(", terminator: '\\q', pattern: '(?<temp>.*)'")
        self.assertIn("terminator: unknown escape \\q", out)
        rc, out = check(", pattern: '(?<temp>.*)'", "[{ name: t, field: temp, area: holding }]")
        self.assertIn("a point with 'field' takes no area or address", out)

    def test_ports_listing_and_a_real_uart(self):
        rc, out, err = run_cli([os.path.join(BIN, "fieldlink"), "ports", "--json"])
        self.assertEqual(rc, 0, err)
        ports = json.loads(out)
        for p in ports:
            self.assertTrue(os.path.exists(p["name"]), p)
            self.assertIn(p["transport"], ("usb", "native", "bluetooth"))
            self.assertTrue(p["device"], p)
        rc, out, err = run_cli([os.path.join(BIN, "fieldlink"), "ports"])
        self.assertEqual(rc, 0, err)
        self.assertTrue(out.startswith("PORT ") if ports else out == "no serial ports found\n", out)

        uart = "/dev/ttyS0"
        try:
            os.close(os.open(uart, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY))
        except OSError as e:
            self.skipTest("no usable %s here: %s" % (uart, e))
        procs = Procs(self)
        broker = Broker(procs)
        # Listens only (streaming mode): nothing is sent on the machine's UART.
        daemon = Daemon(procs, f"""
clouds:
  c: {{ platform: mqtt, host: 127.0.0.1, port: {broker.port}, topic: "fl/{{device}}/{{point}}" }}
buses:
  uart: {{ driver: serial-line, device: {uart}, baud: 19200, parity: even, pattern: '(?<v>\\d+)', timeout: 200ms }}
devices:
  - {{ name: u1, cloud: c, bus: uart, interval: 300ms, points: [{{ name: v, field: v }}] }}
""")
        wait_for(lambda: "no frame within 200ms" in daemon.log() or "link down" in daemon.log(), timeout=10,
                 what="the first poll of the UART")
        rc, _ = daemon.stop()
        self.assertEqual(rc, 0)
        self.assertNotIn("link down", daemon.log(), "libserialport opened and configured the UART")


if __name__ == "__main__":
    unittest.main()
