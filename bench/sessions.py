"""Many device sessions in one process, with the devices on real Modbus TCP: N OneNET device
sessions (each its own client id and token) publishing 1 message/s to a local mosquitto, fed by
N devices polled every second from the bundled Modbus simulator over 4 TCP connections (a
device's unit and registers on a PLC-like server). Against the same N sessions driven the usual
way, one libmosquitto client with its own loop_start() thread each (no polling at all), in the
same run, where that baseline can run (it uses select(): about 340 sessions at most).

Usage: python3 bench/sessions.py BUILD_DIR [SECONDS] [N ...]   (default: 15 s; 300 1000 10000)
Prints one summary line per N: RSS, threads, CPU per acknowledged message, time until all
connected, descriptors.
"""
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from harness import free_port, proc_status, wait_for  # noqa: E402

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 15.0
COUNTS = [int(a) for a in sys.argv[3:]] or [300, 1000, 10000]
KEY = "kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI="
BUSES = 4               # Modbus TCP connections (fixed: the thread count must not grow with N)
UNITS = 250             # unit ids per connection; more devices reuse them at other addresses
BASELINE_MAX = 340      # loop_start clients fail past FD_SETSIZE (3 descriptors each)
TICKS = os.sysconf("SC_CLK_TCK")
WORK = tempfile.mkdtemp(prefix="fl-sessions-")
EMULATOR = os.path.join(BUILD, "test-plugins", "onenet_emulator.so")


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def config(mqtt_port, modbus_port, n):
    buses = "".join("  plc%d: { driver: modbus-tcp, host: 127.0.0.1, port: %d, timeout: 2s }\n" % (b, modbus_port)
                    for b in range(BUSES))
    devices = "".join(
        "  - { name: dev%d, cloud: onenet, bus: plc%d, unit: %d, interval: 1s, "
        "points: [ { name: v, area: holding, address: %d } ] }\n"
        % (i, i % BUSES, (i // BUSES) % UNITS + 1, 10 + 2 * (i // (BUSES * UNITS))) for i in range(n))
    return """
gateway: { log_level: info, data_dir: %s }
clouds:
  onenet: { platform: onenet, host: 127.0.0.1, port: %d, product_id: "469948", product_key: %s, token_expiry: 2524579200 }
buses:
%sdevices:
%s""" % (os.path.join(WORK, "data-%d" % n), mqtt_port, KEY, buses, devices)


def run_daemon(mqtt_port, modbus_port, n):
    cfg = os.path.join(WORK, "sessions-%d.yaml" % n)
    with open(cfg, "w") as f:
        f.write(config(mqtt_port, modbus_port, n))
    log_path = os.path.join(WORK, "fieldlinkd-%d.log" % n)
    with open(log_path, "w") as log:
        d = subprocess.Popen([os.path.join(BUILD, "daemon", "fieldlinkd"), "--config", cfg, "--plugin-dir",
                              os.path.join(BUILD, "plugins")], stdout=log, stderr=subprocess.STDOUT, preexec_fn=raise_nofile)
    m = wait_for(lambda: re.search(r"all %d sessions connected (\d+)ms" % n, open(log_path).read()),
                 timeout=300, what="all sessions to connect")
    time.sleep(SECONDS)
    rss, threads, cpu = proc_status(d.pid, "VmRSS:"), proc_status(d.pid, "Threads:"), cpu_seconds(d.pid)
    fds = len(os.listdir("/proc/%d/fd" % d.pid))
    d.send_signal(signal.SIGTERM)
    d.wait(60)
    text = open(log_path).read()
    acked = int(re.search(r"(\d+) acknowledged, \d+ samples sent", text).group(1))
    polls = sum(int(x) for x in re.findall(r"device \S+: \d+ polls, (\d+) ok", text))
    return {"rss_mb": rss / 1024, "threads": threads, "acked": acked, "cpu": cpu, "connect_ms": int(m.group(1)),
            "connected": n, "fds": fds, "polls": polls}


def run_baseline(port, n):
    out = subprocess.run([os.path.join(BUILD, "bench", "loop_start_baseline"), "127.0.0.1", str(port), str(n),
                          str(SECONDS), KEY], capture_output=True, text=True, check=True, timeout=SECONDS + 120,
                         preexec_fn=raise_nofile).stdout
    b = dict(zip(out.split()[0::2], out.split()[1::2]))
    return {"rss_mb": int(b["rss_kb"]) / 1024, "threads": int(b["threads"]), "acked": int(b["acked"]),
            "cpu": float(b["cpu"]), "connect_ms": int(b["connect_ms"]), "connected": int(b["connected"])}


def us_per_message(r):
    return r["cpu"] / max(1, r["acked"]) * 1e6


def report(n, f, b, at_300):
    line = ("sessions=%d (Modbus TCP devices): rss fieldlinkd %.1f MB; threads %d; descriptors %d; cpu/acked message "
            "fieldlinkd %.0f us" % (n, f["rss_mb"], f["threads"], f["fds"], us_per_message(f)))
    if b:
        line += " | baseline %.0f us (ratio %.2f)" % (us_per_message(b), us_per_message(f) / max(us_per_message(b), 1e-9))
    if at_300 and n != 300:
        line += " | %.2fx the figure at 300" % (us_per_message(f) / us_per_message(at_300))
    line += "; all connected fieldlinkd %d ms" % f["connect_ms"]
    if b:
        line += (" | baseline %s (%d/%d connected)" % ("%d ms" % b["connect_ms"] if b["connected"] == n else "never",
                                                       b["connected"], n))
        line += "; rss baseline %.1f MB, threads baseline %d" % (b["rss_mb"], b["threads"])
    line += "; acked %d, polls %d in %.0f s" % (f["acked"], f["polls"], SECONDS)
    print(line, flush=True)


def main():
    raise_nofile()
    port, modbus_port = free_port(), free_port()
    conf = os.path.join(WORK, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\nlog_type none\nmax_queued_messages 10000\nuser %s\n"
                % (port, os.environ.get("USER", "root")))
        # OneNET answers every dp/post/json (accepted): the daemon finishes a message on that
        # answer, so the broker must give it, as the test emulator does (built with the tests).
        if os.path.exists(EMULATOR):
            devices = os.path.join(WORK, "devices.txt")
            with open(devices, "w") as d:
                d.write("469948 * %s\n" % KEY)
            f.write("allow_anonymous false\nplugin %s\nplugin_opt_devices %s\nplugin_opt_violations %s\n"
                    "plugin_opt_rate 1\nplugin_opt_platform onenet\n"
                    % (EMULATOR, devices, os.path.join(WORK, "violations.log")))
        else:
            f.write("allow_anonymous true\n")
            print("note: %s not built (FIELDLINK_TESTS=OFF): the broker does not answer data, so every message waits "
                  "for an answer that never comes" % EMULATOR, flush=True)
    broker = subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              preexec_fn=raise_nofile)
    sim = subprocess.Popen([os.path.join(BUILD, "daemon", "fieldlink"), "simulate", "--tcp", "127.0.0.1:%d" % modbus_port,
                            "--units", ",".join(str(u) for u in range(1, UNITS + 1)), "--tick", "1s"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, preexec_fn=raise_nofile)
    try:
        assert sim.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        print("sessions benchmark: N OneNET device sessions (own client id and token each) at 1 message/s, each fed by "
              "a device polled every second over Modbus TCP (%d connections to the bundled simulator), %.0f s; "
              "baseline = one libmosquitto loop_start thread per session, no polling" % (BUSES, SECONDS), flush=True)
        at_300 = None
        for n in COUNTS:
            f = run_daemon(port, modbus_port, n)
            b = run_baseline(port, n) if n <= 1000 else None
            if n == 300:
                at_300 = f
            report(n, f, b, at_300)
        print("note: the baseline cannot go past ~%d sessions per process: libmosquitto's loop uses select(), limited "
              "to descriptors below FD_SETSIZE=1024, and each client holds 3" % BASELINE_MAX)
    finally:
        for p in (sim, broker):
            p.terminate()
            p.wait(10)
        if not os.environ.get("FIELDLINK_KEEP_BENCH_DIRS"):
            shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
