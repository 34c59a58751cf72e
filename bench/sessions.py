"""Many device sessions in one process: N OneNET device sessions (each its own client id and
token) publishing 1 message/s to a local mosquitto. fieldlinkd (one epoll loop) against the same
N sessions driven the usual way (one libmosquitto loop_start thread each), in the same run.

Usage: python3 bench/sessions.py BUILD_DIR [SESSIONS] [SECONDS]
Prints one summary line per figure: RSS, threads, CPU per message, time until all connected.
"""
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from harness import free_port, wait_for  # noqa: E402

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
N = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
SECONDS = float(sys.argv[3]) if len(sys.argv) > 3 else 20.0
KEY = "kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI="
TICKS = os.sysconf("SC_CLK_TCK")
WORK = tempfile.mkdtemp(prefix="fl-sessions-")


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def proc_status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def config(port, n):
    devices = "".join("""
  - { name: dev%d, cloud: onenet, bus: sim, unit: %d, interval: 1s, points: [ { name: v, area: holding, address: 0 } ] }"""
                      % (i, i % 247 + 1) for i in range(n))
    return """
gateway: { log_level: info, data_dir: %s }
clouds:
  onenet: { platform: onenet, host: 127.0.0.1, port: %d, product_id: "469948", product_key: %s, token_expiry: 2524579200 }
buses:
  sim: { driver: sim }
devices:%s
""" % (os.path.join(WORK, "data-%d" % n), port, KEY, devices)


def run_baseline(port, n):
    out = subprocess.run([os.path.join(BUILD, "bench", "loop_start_baseline"), "127.0.0.1", str(port), str(n),
                          str(SECONDS), KEY], capture_output=True, text=True, check=True, timeout=SECONDS + 120).stdout
    b = dict(zip(out.split()[0::2], out.split()[1::2]))
    return {"rss_mb": int(b["rss_kb"]) / 1024, "threads": int(b["threads"]), "acked": int(b["acked"]),
            "cpu": float(b["cpu"]), "connect_ms": int(b["connect_ms"]), "connected": int(b["connected"])}


def run_daemon(work, port, n):
    cfg = os.path.join(work, "sessions-%d.yaml" % n)
    with open(cfg, "w") as f:
        f.write(config(port, n))
    log_path = os.path.join(work, "fieldlinkd-%d.log" % n)
    with open(log_path, "w") as log:
        d = subprocess.Popen([os.path.join(BUILD, "daemon", "fieldlinkd"), "--config", cfg, "--plugin-dir",
                              os.path.join(BUILD, "plugins")], stdout=log, stderr=subprocess.STDOUT)
    m = wait_for(lambda: re.search(r"all %d sessions connected (\d+)ms" % n, open(log_path).read()),
                 timeout=120, what="all sessions to connect")
    time.sleep(SECONDS)
    rss, threads, cpu = proc_status(d.pid, "VmRSS:"), proc_status(d.pid, "Threads:"), cpu_seconds(d.pid)
    d.send_signal(signal.SIGTERM)
    d.wait(30)
    acked = int(re.search(r"(\d+) acknowledged", open(log_path).read()).group(1))
    return {"rss_mb": rss / 1024, "threads": threads, "acked": acked, "cpu": cpu, "connect_ms": int(m.group(1)),
            "connected": n}


def report(n, f, b):
    us = lambda r: r["cpu"] / max(1, r["acked"]) * 1e6
    print("sessions=%d: rss fieldlinkd %.1f MB | baseline %.1f MB; threads fieldlinkd %d | baseline %d; "
          "cpu/message fieldlinkd %.0f us | baseline %.0f us (ratio %.2f); all connected fieldlinkd %d ms | "
          "baseline %s (%d/%d connected); messages acked fieldlinkd %d | baseline %d"
          % (n, f["rss_mb"], b["rss_mb"], f["threads"], b["threads"], us(f), us(b), us(f) / max(us(b), 1e-9),
             f["connect_ms"], "%d ms" % b["connect_ms"] if b["connected"] == n else "never", b["connected"], n,
             f["acked"], b["acked"]))


def main():
    raise_nofile()
    work = WORK
    port = free_port()
    conf = os.path.join(work, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\nallow_anonymous true\nlog_type none\nmax_queued_messages 10000\nuser %s\n"
                % (port, os.environ.get("USER", "root")))
    broker = subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              preexec_fn=raise_nofile)
    try:
        time.sleep(0.5)
        print("sessions benchmark: OneNET device sessions (own client id and token each), 1 message/s each, "
              "%.0f s; baseline = one libmosquitto loop_start thread per session" % SECONDS)
        for n in (N, 300):
            report(n, run_daemon(work, port, n), run_baseline(port, n))
        print("note: the baseline cannot go past ~340 sessions per process: libmosquitto's loop uses select(), "
              "limited to descriptors below FD_SETSIZE=1024, and each client holds 3")
    finally:
        broker.terminate()
        broker.wait(10)


if __name__ == "__main__":
    main()
