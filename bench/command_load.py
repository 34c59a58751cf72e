"""Command-to-reply under load (issue 24): a write on the generic MQTT command topic to a device on
Modbus TCP, through fieldlinkd until its reply, one at a time; first with the gateway idle (the
one device, polled once a second), then, in the same run, with the same bus saturated by polls
(64 more devices, 120 registers each, every 10 ms: more than the bus can serve) while a backlog
replays (the broker was down for the first BACKLOG_S seconds, the samples of that time wait in
the store and go out while the commands are measured). Twice: with units that take 2 ms to
answer (a PLC; the bus is the limit), and with units that answer at once (the simulator flat out:
about 700,000 values a second, fieldlinkd's CPU is the limit).

Usage: python3 bench/command_load.py BUILD_DIR [COMMANDS]
Prints one summary line per figure; the goal is p99 <= 20 ms under load.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from harness import free_port, wait_for  # noqa: E402

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
N = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
BACKLOG_S = int(os.environ.get("BACKLOG_S", "30"))
LOADERS = 64
LOAD_INTERVAL_MS = 10
WORK = tempfile.mkdtemp(prefix="fl-bench-command-load-")
TOOL = os.path.join(BUILD, "bench", "control_latency")


def measure(mqtt_port):
    out = subprocess.run([TOOL, "mqtt", str(mqtt_port), "t1", str(N)], capture_output=True, text=True,
                         timeout=900).stdout.split()
    return dict(zip(out[::2], (float(x) for x in out[1::2])))


def find(obj, key):
    """Every value of `key` anywhere in status.json."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key:
                yield v
            else:
                yield from find(v, key)
    elif isinstance(obj, list):
        for v in obj:
            yield from find(v, key)


def status(data):
    with open(os.path.join(data, "status.json")) as f:
        return json.load(f)


def start_broker(procs, port):
    conf = os.path.join(WORK, "mosquitto-%d.conf" % port)
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\nmax_queued_messages 0\n" % port)
    procs.append(subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(0.3)


def start_daemon(procs, name, mqtt_port, modbus_port, loaders):
    devices = """
  - name: t1
    cloud: local
    bus: tcp
    unit: 1
    interval: 1s
    points:
      - { name: setpoint, area: holding, address: 10, type: float32, writable: true }
      - { name: count, area: holding, address: 0, type: uint32 }"""
    for i in range(loaders):
        devices += """
  - { name: load%d, cloud: local, bus: tcp, unit: %d, interval: %dms, points_file: %s/regs.csv }""" % (
            i, 2 + i, LOAD_INTERVAL_MS, WORK)
    data = os.path.join(WORK, name)
    cfg = os.path.join(WORK, name + ".yaml")
    with open(cfg, "w") as f:
        f.write(f"""gateway: {{ data_dir: {data}, log_level: warn }}
clouds:
  local: {{ platform: mqtt, host: 127.0.0.1, port: {mqtt_port}, command_topic: "fl/{{device}}/set", max_inflight: 100 }}
buses:
  tcp: {{ driver: modbus-tcp, host: 127.0.0.1, port: {modbus_port} }}
devices:{devices}
""")
    out = open(os.path.join(WORK, name + ".log"), "w")
    procs.append(subprocess.Popen([os.path.join(BUILD, "daemon", "fieldlinkd"), "--config", cfg, "--plugin-dir",
                                   os.path.join(BUILD, "plugins")], stdout=out, stderr=out))
    wait_for(lambda: os.path.exists(os.path.join(data, "status.json")), timeout=30, what="fieldlinkd " + name)
    return data


def stop(procs):
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
    procs.clear()


def run_sim(procs, answer_us):
    port = free_port()
    sim = os.path.join(BUILD, "daemon", "fieldlink")
    procs.append(subprocess.Popen([sim, "simulate", "--tcp", "127.0.0.1:%d" % port, "--answer-us", str(answer_us),
                                   "--units"] + [str(u) for u in range(1, LOADERS + 2)],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
    time.sleep(0.5)
    return port


def loaded(procs, daemons, name, modbus_port, idle):
    """Commands while the bus is saturated and a backlog replays; one summary line."""
    load_port = free_port()  # the broker is down at first: the backlog builds up
    started = time.monotonic()
    data = start_daemon(daemons, name, load_port, modbus_port, LOADERS)
    time.sleep(BACKLOG_S)
    start_broker(procs, load_port)

    def t1_connected():
        st = status(data)
        return any(x["name"] == "t1" and x["connected"] for x in st["sessions"])
    wait_for(t1_connected, timeout=90, what="the gateway connected to the broker")
    before = status(data)["store"]
    t0 = time.monotonic()
    got = measure(load_port)
    took = time.monotonic() - t0
    time.sleep(1.1)  # the status files are written every second
    after = status(data)["store"]
    polled = after["appended"] / (time.monotonic() - started)  # poll cycles a second the bus served
    stop(daemons)
    return ("bus saturated (%d devices x 120 registers asked every %d ms = %d polls/s, the bus served %.0f/s, %d "
            "values/s) while a backlog of %d batches replays (%d left after %.1f s): p50 %.2f ms, p99 %.2f ms "
            "(max %.2f, %d commands, %d failed); p99 ratio to idle %.2f; goal p99 <= 20 ms: %s"
            % (LOADERS, LOAD_INTERVAL_MS, LOADERS * 1000 // LOAD_INTERVAL_MS, polled, polled * 120,
               before["queued_batches"], after["queued_batches"], took, got["p50_us"] / 1000,
               got["p99_us"] / 1000, got["max_us"] / 1000, got["n"], got["failures"],
               got["p99_us"] / max(idle["p99_us"], 1), "met" if got["p99_us"] <= 20000 else "NOT met"))


def main():
    procs, daemons = [], []
    try:
        with open(os.path.join(WORK, "regs.csv"), "w") as f:
            f.write("name,area,address\n" + "".join("r%d,holding,%d\n" % (i, 100 + i) for i in range(120)))
        slow_port = run_sim(procs, 2000)  # units that take 2 ms to answer, like a PLC
        fast_port = run_sim(procs, 0)     # answered at once: the gateway's CPU is the limit

        idle_port = free_port()
        start_broker(procs, idle_port)
        start_daemon(daemons, "idle", idle_port, slow_port, 0)
        time.sleep(1)
        idle = measure(idle_port)
        stop(daemons)
        print("command-to-reply, Modbus TCP (units answering in 2 ms), idle gateway: p50 %.2f ms, p99 %.2f ms "
              "(max %.2f, %d commands, %d failed)"
              % (idle["p50_us"] / 1000, idle["p99_us"] / 1000, idle["max_us"] / 1000, idle["n"], idle["failures"]))
        print("command-to-reply, Modbus TCP (units answering in 2 ms), " +
              loaded(procs, daemons, "plc", slow_port, idle))
        print("command-to-reply, Modbus TCP (units answering at once: fieldlinkd's CPU saturated), " +
              loaded(procs, daemons, "flat-out", fast_port, idle))
    finally:
        stop(daemons)
        stop(procs)
        if os.environ.get("FIELDLINK_KEEP_BENCH_DIR"):
            print("kept " + WORK)
        else:
            shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
