"""`fieldlink scan` against devices it has never seen: the bundled simulator and Debian's pymodbus
(a Modbus implementation we did not write), over Modbus TCP and over a serial line (wire.py: two
ptys joined by a line that has a speed, so a wrong baud rate hears noise) at a baud rate the test
picks at random, with units at random ids. What the scan must find is what the test set up; the
draft configuration it writes must pass `fieldlink check`; and nothing it sends may write."""
import os
import pty
import random
import re
import subprocess
import sys
import unittest

from harness import BIN, Procs, Simulator, free_port, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
BAUDS = [9600, 19200, 38400, 115200, 57600, 4800, 2400]  # the scan's default order


def scan(args, timeout=300, stderr=subprocess.PIPE):
    p = subprocess.run([os.path.join(BIN, "fieldlink"), "scan"] + args, stdout=subprocess.PIPE, stderr=stderr,
                       text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def table(out):
    """The scan's table as {unit: (setting, identification, sunspec, profile)}."""
    rows = {}
    for line in out.splitlines()[1:]:
        if re.match(r"^\d+ +(tcp|\d+ 8)", line):  # fixed columns: UNIT 5, SETTING 10, IDENTIFICATION 40, SUNSPEC 22
            cells = [line[0:6], line[6:17], line[17:58], line[58:81], line[81:]]
            rows[int(cells[0])] = tuple(c.strip() for c in cells[1:])
    return rows


def requests_sent(log_path):
    """The RTU requests in the wire's log of what the scanner sent: (unit, function) each."""
    data = open(log_path, "rb").read()
    frames, at = [], 0
    while at < len(data):
        fc = data[at + 1]
        length = {3: 8, 43: 7}.get(fc)
        if length is None:
            raise AssertionError("the scanner sent function %d at byte %d: %s" % (fc, at, data[at:at + 12].hex()))
        frames.append((data[at], fc))
        at += length
    return frames


class ScanTest(unittest.TestCase):
    def setUp(self):
        self.procs = Procs(self)
        self.rng = random.Random()
        seed = self.rng.randrange(1 << 30)
        self.rng.seed(seed)
        print("seed", seed, file=sys.stderr)

    def check_draft(self, path):
        p = subprocess.run([os.path.join(BIN, "fieldlink"), "check", path], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr + open(path).read())
        return open(path).read()

    def wire(self):
        a, b, log = self.procs.path("ttyA"), self.procs.path("ttyB"), self.procs.path("wire.bin")
        self.procs.start([sys.executable, os.path.join(HERE, "wire.py"), a, b, log], "wire.log")
        wait_for(lambda: os.path.exists(a) and os.path.exists(b), what="the wire's ptys")
        return a, b, log

    def pymodbus(self, args):
        self.procs.start([sys.executable, os.path.join(HERE, "pymodbus_server.py")] + args, "pymodbus.log")
        wait_for(lambda: "ready" in self.procs.read("pymodbus.log"), what="pymodbus server")

    def test_tcp_finds_the_simulators_units_and_a_sunspec_map(self):
        port = free_port()
        units = sorted(self.rng.sample(range(1, 41), 3))
        sim = Simulator(self.procs, tcp_port=port, units=units)
        inverter = units[1]
        # A SunSpec map at 40000: "SunS", the common model (1, 65 registers) with its manufacturer
        # and model, the inverter model 103 (50 registers), the end marker.
        words = {40000: [0x5375, 0x6E53, 1, 65], 40069: [103, 50], 40121: [0xFFFF, 0]}
        text = b"Fronius".ljust(32, b"\0") + b"Symo 8.2-3-M".ljust(32, b"\0")
        words[40004] = [text[i] << 8 | text[i + 1] for i in range(0, 64, 2)]
        for address, ws in words.items():
            sim.cmd("set %d holding %d %s" % (inverter, address, " ".join(map(str, ws))))
        draft = self.procs.path("draft.yaml")
        rc, out, err = scan(["--tcp", "127.0.0.1:%d" % port, "--units", "1-40", "--timeout", "50ms", "-o", draft])
        self.assertEqual(rc, 0, out + err)
        rows = table(out)
        self.assertEqual(sorted(rows), units, out)
        for u in units:
            self.assertIn("fieldlink simulator", rows[u][1])
        self.assertEqual(rows[inverter][2], "@40000 1,103", out)
        self.assertEqual(rows[inverter][3], "sunspec-inverter", out)
        self.assertEqual([rows[u][3] for u in units if u != inverter], ["-", "-"])
        self.assertIn("3 units found on 127.0.0.1:%d" % port, out)
        yaml = self.check_draft(draft)
        self.assertIn("template: sunspec-inverter", yaml)
        self.assertEqual(yaml.count("- name: unit"), 3, yaml)
        self.assertEqual(err, "", "no progress or warnings in a pipe")

    def test_tcp_reads_pymodbus_identification_and_matches_its_profile(self):
        port = free_port()
        units = sorted(self.rng.sample(range(1, 31), 2))
        self.pymodbus(["--tcp", str(port), "--units", ",".join(map(str, units)), "--vendor", "Schneider Electric",
                       "--product", "A9MEM3155", "--revision", "2.3"])
        rc, out, err = scan(["--tcp", "127.0.0.1:%d" % port, "--units", "1-30", "--timeout", "100ms", "--yaml"])
        self.assertEqual(rc, 0, out + err)
        rows = table(err)  # with --yaml the table goes to standard error
        self.assertEqual(sorted(rows), units, err)
        for u in units:
            self.assertEqual(rows[u][1], "Schneider Electric A9MEM3155 2.3")
            self.assertEqual(rows[u][3], "schneider-iem3000")
        draft = self.procs.write("draft.yaml", out)
        yaml = self.check_draft(draft)
        self.assertIn("templates:\n  schneider-iem3000: { points_file: schneider-iem3000.csv }", yaml)

    def test_rtu_finds_the_simulators_speed_and_units(self):
        a, b, log = self.wire()
        baud = self.rng.choice(BAUDS)
        units = sorted(self.rng.sample(range(1, 21), 2))
        self.start_simulator_rtu(b, baud, units)
        rc, out, err = scan(["--rtu", a, "--units", "1-20", "--timeout", "60ms"])
        self.assertEqual(rc, 0, out + err)
        rows = table(out)
        self.assertEqual(sorted(rows), units, out)
        self.assertEqual({r[0] for r in rows.values()}, {"%d 8N1" % baud}, out)
        self.assertIn("at %d 8N1" % baud, out)
        sent = requests_sent(log)
        self.assertEqual({fc for _, fc in sent}, {3, 43}, "only reads and identification requests")
        # Every setting before the right one was tried with the whole range, none after it.
        tried = BAUDS.index(baud) * 3 + 1
        self.assertEqual(sum(1 for u, fc in sent if fc == 3 and u == 1), tried + (1 if 1 in units else 0) * 3, out)
        self.assertNotIn("\r", err)

    def start_simulator_rtu(self, device, baud, units):
        args = [os.path.join(BIN, "fieldlink"), "simulate", "--rtu", device, "--baud", str(baud),
                "--units", ",".join(map(str, units))]
        p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.procs.procs.append(p)
        self.assertEqual(p.stdout.readline().strip(), "ready")
        return p

    def test_rtu_finds_pymodbus_units_at_a_random_speed(self):
        a, b, log = self.wire()
        baud = self.rng.choice([9600, 19200, 38400, 115200])
        units = sorted(self.rng.sample(range(1, 248), 2))
        self.pymodbus(["--rtu", b, "--baud", str(baud), "--units", ",".join(map(str, units)), "--vendor", "ACME",
                       "--product", "PM-%d" % units[0]])
        ids = "%d-%d,%d-%d" % (max(1, units[0] - 3), units[0] + 3, max(1, units[1] - 3), min(247, units[1] + 3))
        rc, out, err = scan(["--rtu", a, "--units", ids, "--parities", "N", "--timeout", "100ms", "-o",
                             self.procs.path("draft.yaml")])
        self.assertEqual(rc, 0, out + err)
        rows = table(out)
        self.assertEqual(sorted(rows), units, out)
        for u in units:
            self.assertEqual(rows[u][0], "%d 8N1" % baud)
            self.assertEqual(rows[u][1], "ACME PM-%d 1.0" % units[0])
        yaml = self.check_draft(self.procs.path("draft.yaml"))
        self.assertIn("baud: %d\n    parity: none" % baud, yaml)
        self.assertEqual({fc for _, fc in requests_sent(log)}, {3, 43})

    def test_an_empty_line_finds_nothing_and_says_so(self):
        a, _, _ = self.wire()
        rc, out, err = scan(["--rtu", a, "--units", "1-5", "--bauds", "9600,19200", "--parities", "NE",
                             "--timeout", "20ms"])
        self.assertEqual(rc, 1, out + err)
        self.assertIn("0 units found on %s in" % a, out)
        self.assertIn("20 probes", out)

    def test_bad_options_are_refused_with_what_was_expected(self):
        for args, want in ((["--tcp", "127.0.0.1:1", "--units", "0-300"], "'0-300' is not a unit id or range in 1..247"),
                           (["--rtu", "/dev/null", "--parities", "X"], "expected letters of N, E, O"),
                           (["--tcp", "127.0.0.1:1", "--timeout", "1h"], "expected a duration of 1ms..10s"),
                           (["--units", "1-3"], "give either --rtu DEVICE or --tcp HOST[:PORT]"),
                           (["--rtu", self.procs.path("no-such-tty")], "cannot open")):
            rc, out, err = scan(args)
            self.assertEqual(rc, 2, args)
            self.assertIn(want, err, args)

    def test_progress_shows_on_a_terminal(self):
        port = free_port()
        Simulator(self.procs, tcp_port=port, units=[2])
        master, slave = pty.openpty()
        try:
            rc, out, _ = scan(["--tcp", "127.0.0.1:%d" % port, "--units", "1-4", "--timeout", "30ms"], stderr=slave)
            os.close(slave)
            shown = b""
            try:
                while True:
                    chunk = os.read(master, 4096)
                    if not chunk:
                        break
                    shown += chunk
            except OSError:
                pass
        finally:
            os.close(master)
        self.assertEqual(rc, 0, out)
        self.assertIn(b"unit 4/4, 1 found", shown)


if __name__ == "__main__":
    unittest.main()
