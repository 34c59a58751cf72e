"""`fieldlink scan` bench: the time of a 1-247 unit sweep on a 9600-baud line, against the physical
minimum for that many probes, and against mbpoll (a libmodbus command-line master) polling the
same 247 addresses once with the same timeout, in the same run.

The line is tests/integration/wire.py: two ptys joined by a wire that takes each character's
time at the baud rate (10 bits a character at 8N1). An empty line is the worst case and the one
the minimum is exact for: every probe is an 8-character request, then the timeout, then 3.5
characters of silence before the next. A second sweep with two simulated units on the line shows
what finding and identifying them adds.

Usage: python3 bench/scan.py BUILD_DIR [TIMEOUT_MS]   (default 100)
"""
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BAUD = 9600


def wait_path(path):
    for _ in range(200):
        if os.path.exists(path):
            return
        time.sleep(0.025)
    raise SystemExit("no " + path)


def main():
    build = sys.argv[1]
    timeout_ms = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    fieldlink = os.path.join(build, "daemon", "fieldlink")
    tmp = tempfile.mkdtemp(prefix="fl-scan-bench-")
    a, b = os.path.join(tmp, "ttyA"), os.path.join(tmp, "ttyB")
    procs = [subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "integration", "wire.py"), a, b,
                               os.path.join(tmp, "wire.bin")], stdout=subprocess.DEVNULL)]
    try:
        wait_path(a)
        wait_path(b)
        char = 10 / BAUD
        minimum = 247 * (8 * char + 3.5 * char + timeout_ms / 1000)
        args = [fieldlink, "scan", "--rtu", a, "--bauds", str(BAUD), "--parities", "N", "--units", "1-247",
                "--timeout", "%dms" % timeout_ms]
        t0 = time.monotonic()
        empty = subprocess.run(args, capture_output=True, text=True)
        empty_s = time.monotonic() - t0
        t0 = time.monotonic()
        subprocess.run(["mbpoll", "-m", "rtu", "-b", str(BAUD), "-P", "none", "-a", "1:247", "-r", "1", "-1",
                        "-o", "%.2f" % (timeout_ms / 1000), a], capture_output=True, text=True)
        mbpoll_s = time.monotonic() - t0
        sim = subprocess.Popen([fieldlink, "simulate", "--rtu", b, "--baud", str(BAUD), "--units", "17,200"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(sim)
        sim.stdout.readline()
        t0 = time.monotonic()
        found = subprocess.run(args, capture_output=True, text=True)
        found_s = time.monotonic() - t0
        print("scan 1-247 at %d 8N1, timeout %d ms, empty line: %.2f s | physical minimum 247 x (8-char request "
              "+ timeout + 3.5 chars) %.2f s | ratio %.3f (1.0 is the floor) | mbpoll -a 1:247 -1 same timeout "
              "%.2f s (%.2fx the scan)" % (BAUD, timeout_ms, empty_s, minimum, empty_s / minimum, mbpoll_s,
                                           mbpoll_s / empty_s))
        summary = [line for line in found.stdout.splitlines() if "found on" in line]
        print("scan 1-247 at %d 8N1 with units 17 and 200 (found, identified, SunSpec probed): %.2f s | the empty "
              "line %.2f s | +%.2f s | %s" % (BAUD, found_s, empty_s, found_s - empty_s,
                                            summary[0] if summary else found.stdout + found.stderr))
    finally:
        for p in procs:
            p.terminate()
            p.wait(5)


if __name__ == "__main__":
    main()
