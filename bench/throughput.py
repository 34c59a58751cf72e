"""Points decoded and published per CPU-second of fieldlinkd (Modbus TCP on loopback into
mosquitto), with the broker's and the Modbus server's CPU excluded; baselines in the same run:
the Modbus server's own ceiling (libmodbus client issuing the same read back to back) and mbpoll
at its fastest poll rate.

Usage: python3 bench/throughput.py BUILD_DIR [SECONDS]
Prints one summary line per figure.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from harness import free_port, wait_for  # noqa: E402

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
BUSES = 2            # TCP connections, one worker thread each
DEVICES_PER_BUS = 12  # units polled back to back on each connection (10 ms interval each)
POINTS = 100          # per device, in one 125-register read
TICKS = os.sysconf("SC_CLK_TCK")
WORK = tempfile.mkdtemp(prefix="fl-bench-")


def points_yaml():
    # 100 points in 125 registers (one request per cycle): float32, int16, scaled uint16, uint16.
    out, addr = [], 0
    for i in range(25):
        out.append("{ name: f%d, area: holding, address: %d, type: float32 }" % (i, addr))
        addr += 2
    for kind in ("int16", "uint16s", "uint16"):
        for i in range(25):
            if kind == "uint16s":
                out.append("{ name: s%d, area: holding, address: %d, type: uint16, scale: 0.1 }" % (i, addr))
            else:
                out.append("{ name: %s_%d, area: holding, address: %d, type: %s }" % (kind, i, addr, kind))
            addr += 1
    return "\n".join("      - " + p for p in out)


def config(mqtt_port, modbus_port, store):
    buses = "".join("""
  tcp%d:
    driver: modbus-tcp
    host: 127.0.0.1
    port: %d
    timeout: 1s""" % (b, modbus_port) for b in range(BUSES))
    pts = points_yaml()
    devices = "".join("""
  - name: dev%d_%d
    cloud: local
    bus: tcp%d
    unit: %d
    interval: 10ms
    points:
%s""" % (b, d, b, d + 1, pts) for b in range(BUSES) for d in range(DEVICES_PER_BUS))
    return """
gateway:
  log_level: info
  data_dir: %s
  store: %s
clouds:
  local:
    platform: mqtt
    host: 127.0.0.1
    port: %d
    max_inflight: 200
buses:%s
devices:%s
""" % (os.path.join(WORK, "data-" + store), store, mqtt_port, buses, devices)


def server_requests(sim):
    sim.stdin.write("stats\n")
    sim.stdin.flush()
    return int(sim.stdout.readline().split()[1])


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def samples_sent(data_dir):
    """Samples published so far (status.json, rewritten every second)."""
    with open(os.path.join(data_dir, "status.json")) as f:
        return sum(s["samples_sent"] for s in json.load(f)["sessions"])


def run_fieldlinkd(mqtt_port, modbus_port, store):
    cfg = os.path.join(WORK, "bench-%s.yaml" % store)
    with open(cfg, "w") as f:
        f.write(config(mqtt_port, modbus_port, store))
    data_dir = os.path.join(WORK, "data-" + store)
    log_path = os.path.join(WORK, "fieldlinkd-%s.log" % store)
    with open(log_path, "w") as log:
        d = subprocess.Popen([os.path.join(BUILD, "daemon", "fieldlinkd"), "--config", cfg, "--plugin-dir",
                              os.path.join(BUILD, "plugins")], stdout=log, stderr=subprocess.STDOUT)
    wait_for(lambda: "connected to cloud" in open(log_path).read(), what="fieldlinkd to connect")
    time.sleep(3)  # warm-up: the store's tables and log reach their working size
    # Steady state: CPU and samples over the same window, from one status.json write to another.
    mtime = lambda: os.stat(os.path.join(data_dir, "status.json")).st_mtime
    m0 = mtime()
    wait_for(lambda: mtime() != m0, what="status.json")
    cpu0, s0, t0 = cpu_seconds(d.pid), samples_sent(data_dir), time.monotonic()
    time.sleep(SECONDS)
    m1 = mtime()
    wait_for(lambda: mtime() != m1, what="status.json")
    cpu1, s1, t1 = cpu_seconds(d.pid), samples_sent(data_dir), time.monotonic()
    d.send_signal(signal.SIGTERM)
    d.wait(10)
    text = open(log_path).read()
    polls = sum(int(x) for x in re.findall(r"device dev\d+_\d+: (\d+) polls", text))
    wall = t1 - t0
    cpu, samples = cpu1 - cpu0, s1 - s0
    return {"ppc": samples / cpu if cpu > 0 else 0, "samples": samples, "cpu": cpu,
            "acked": int(re.search(r"(\d+) acknowledged", text).group(1)), "req_rate": samples / POINTS / wall}


def start_broker_and_simulator(build, mqtt_port, modbus_port):
    """mosquitto on loopback (its $SYS figures every second) and the bundled simulator serving
    units 1..DEVICES_PER_BUS over Modbus TCP; both ready. Returns the two processes."""
    conf = os.path.join(WORK, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\nallow_anonymous true\nlog_type none\nsys_interval 1\nuser %s\n"
                % (mqtt_port, os.environ.get("USER", "root")))
    broker = subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sim = subprocess.Popen([os.path.join(build, "daemon", "fieldlink"), "simulate", "--tcp",
                            "127.0.0.1:%d" % modbus_port, "--units",
                            ",".join(str(u) for u in range(1, DEVICES_PER_BUS + 1))],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert sim.stdout.readline().strip() == "ready"
    time.sleep(1.5)  # the broker's first $SYS figures
    return broker, sim


def main():
    procs = []
    try:
        mqtt_port, modbus_port = free_port(), free_port()
        procs += start_broker_and_simulator(BUILD, mqtt_port, modbus_port)
        sim = procs[1]

        # Baseline 1: a bare libmodbus read loop issuing the same reads (units 1..12, 125 registers
        # holding the 100 points): the server's ceiling, and the points per CPU-second of a client
        # that only reads.
        load = subprocess.run([os.path.join(BUILD, "bench", "modbus_load"), "127.0.0.1", str(modbus_port),
                               str(DEVICES_PER_BUS), "125", str(min(SECONDS, 5.0))], capture_output=True, text=True,
                              check=True).stdout
        m = re.search(r"requests (\d+) seconds ([\d.]+) cpu ([\d.]+)", load)
        ceiling = int(m.group(1)) / float(m.group(2))
        bare_ppc = int(m.group(1)) * POINTS / float(m.group(3))
        # The same, on fieldlinkd's schedule: every unit once per 10 ms, sleeping in between.
        paced = subprocess.run([os.path.join(BUILD, "bench", "modbus_load"), "127.0.0.1", str(modbus_port),
                                str(DEVICES_PER_BUS), "125", str(min(SECONDS, 5.0)), "10"], capture_output=True, text=True,
                               check=True).stdout
        m = re.search(r"requests (\d+) seconds ([\d.]+) cpu ([\d.]+)", paced)
        paced_ppc = int(m.group(1)) * POINTS / max(float(m.group(3)), 1e-3)

        # Baseline 2: mbpoll, the usual command-line poller, at its fastest rate (10 ms floor).
        mb = subprocess.Popen(["mbpoll", "-m", "tcp", "-p", str(modbus_port), "-a", "1", "-0", "-r", "0", "-c", "125",
                               "-t", "4", "-l", "11", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              text=True)
        time.sleep(0.5)
        before = server_requests(sim)
        time.sleep(3.0)
        mbpoll_rate = (server_requests(sim) - before) / 3.0
        mb.send_signal(signal.SIGINT)
        mb.communicate(timeout=5)

        results = {store: run_fieldlinkd(mqtt_port, modbus_port, store) for store in ("disk", "memory")}
        disk, memory = results["disk"], results["memory"]
        print("throughput: fieldlinkd %s points decoded+published per CPU-second with the durable store in the path | "
              "bare libmodbus read loop, same reads, %s points read per CPU-second | ratio %.2f (target >= 0.5) "
              "(%d points in %.2f CPU-s of steady state; %d messages acked in all)"
              % (format(int(disk["ppc"]), ","), format(int(bare_ppc), ","), disk["ppc"] / bare_ppc, disk["samples"],
                 disk["cpu"], disk["acked"]))
        print("throughput on the same schedule: fieldlinkd %s points/CPU-s | bare libmodbus loop reading every unit once "
              "per 10 ms %s points/CPU-s | ratio %.2f" % (format(int(disk["ppc"]), ","), format(int(paced_ppc), ","),
                                                          disk["ppc"] / paced_ppc))
        print("store cost: live with store %s points/CPU-s | without store (store: memory) %s points/CPU-s | ratio %.2f "
              "(target >= 0.5)" % (format(int(disk["ppc"]), ","), format(int(memory["ppc"]), ","),
                                   disk["ppc"] / max(memory["ppc"], 1)))
        print("baseline: Modbus server ceiling %s requests/s (libmodbus tight loop, same 125-register read) | "
              "mbpoll %.0f requests/s (fastest poll rate) | fieldlinkd %s requests/s = %.0f%% of the ceiling"
              % (format(int(ceiling), ","), mbpoll_rate, format(int(disk["req_rate"]), ","),
                 100.0 * disk["req_rate"] / ceiling))
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(3)
                except subprocess.TimeoutExpired:
                    p.kill()
        if not os.environ.get("FIELDLINK_KEEP_BENCH_DIRS"):
            shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
