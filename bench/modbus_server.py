"""The local Modbus TCP server (gateway.modbus_server) under 50 HMI clients, in the same run as
without them: does serving slow the polling? The map is throughput.py's (2 Modbus TCP connections,
24 units polled every 10 ms, 100 points each, the durable store in the path, into mosquitto);
the server serves the 100 points of two units. One fieldlinkd runs three windows: no client, 50
clients, no client again. Each client reads the 125 registers of one served unit every 20 ms
(2,500 reads per second in all, far more than HMIs poll) from a separate process.

Figures:
- polls per second of the bus workers with 50 clients against without (the mean of the two quiet
  windows): the ratio should be 1.
- fieldlinkd's CPU-seconds per second in both, and the difference per served read.
- the served read's latency p50/p99 at the client, against the same read from the bundled
  simulator (a libmodbus server answering from memory) by the same client in the same run.

Usage: python3 bench/modbus_server.py BUILD_DIR [SECONDS]
Prints one summary line per figure.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
import throughput  # noqa: E402  (the same map and measuring helpers)
from harness import free_port, http_get, wait_for  # noqa: E402

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
CLIENTS = 50
PERIOD_S = 0.02

# The clients: one asyncio process, CLIENTS connections, one FC3 read of 125 registers every
# PERIOD_S each; prints reads, exceptions, errors and the latencies' p50/p99 in ms as JSON.
CLIENT = r"""
import asyncio, json, struct, sys, time
host, port, unit, clients, period, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
lat, exc, err = [], [0], [0]
async def one(k):
    try:
        r, w = await asyncio.open_connection(host, port)
    except OSError:
        err[0] += 1
        return
    end = time.monotonic() + seconds
    tid = 0
    while time.monotonic() < end:
        tid = (tid + 1) & 0xFFFF
        t0 = time.perf_counter()
        w.write(struct.pack(">HHHBBHH", tid, 0, 6, unit, 3, 0, 125))
        try:
            head = await r.readexactly(9)
            n = head[8]
            if head[7] & 0x80:
                exc[0] += 1
            else:
                await r.readexactly(n)
        except (asyncio.IncompleteReadError, OSError):
            err[0] += 1
            return
        lat.append(time.perf_counter() - t0)
        await asyncio.sleep(max(0.0, period - (time.perf_counter() - t0)))
    w.close()
async def main():
    await asyncio.gather(*(one(k) for k in range(clients)))
asyncio.run(main())
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else 0
print(json.dumps({"reads": len(lat), "exceptions": exc[0], "errors": err[0], "p50": q(0.5), "p99": q(0.99)}))
"""


def config(mqtt_port, modbus_port, http_port, serve_port):
    text = throughput.config(mqtt_port, modbus_port, "disk")
    served = []
    for unit, device in ((1, "dev0_0"), (2, "dev1_0")):
        for line in throughput.points_yaml().splitlines():
            name = line.split("name: ")[1].split(",")[0]
            address = line.split("address: ")[1].split(",")[0]
            served.append("      - { device: %s, point: %s, unit: %d, area: holding, address: %s }"
                          % (device, name, unit, address))
    return text.replace("gateway:\n", "gateway:\n  http: 127.0.0.1:%d\n  modbus_server:\n    listen: 127.0.0.1:%d\n"
                        "    max_clients: %d\n    map:\n%s\n" % (http_port, serve_port, CLIENTS + 4, "\n".join(served)), 1)


def polls(http_port):
    runtime = json.loads(http_get("http://127.0.0.1:%d/api/runtime" % http_port)[1])
    return sum(d["polls"] for b in runtime["buses"] for d in b["devices"]), runtime.get("modbus_server", {})


def window(pid, http_port, clients=None):
    """Polls per second and CPU-seconds per second of fieldlinkd over SECONDS; with `clients`
    running meanwhile, their figures too."""
    cpu0, (p0, s0), t0 = throughput.cpu_seconds(pid), polls(http_port), time.monotonic()
    if clients:
        out = clients.communicate(timeout=SECONDS + 60)[0]
    else:
        time.sleep(SECONDS)
    cpu1, (p1, s1), t1 = throughput.cpu_seconds(pid), polls(http_port), time.monotonic()
    wall = t1 - t0
    r = {"polls": (p1 - p0) / wall, "cpu": (cpu1 - cpu0) / wall, "wall": wall,
         "served": s1.get("requests", 0) - s0.get("requests", 0)}
    if clients:
        r.update(json.loads(out))
    return r


def start_clients(port, unit, seconds):
    return subprocess.Popen([sys.executable, "-c", CLIENT, "127.0.0.1", str(port), str(unit), str(CLIENTS),
                             str(PERIOD_S), str(seconds)], stdout=subprocess.PIPE, text=True)


def main():
    procs = []
    try:
        mqtt_port, modbus_port = free_port(), free_port()
        broker, sim = throughput.start_broker_and_simulator(BUILD, mqtt_port, modbus_port)
        procs += [broker, sim]
        http_port, serve_port = free_port(), free_port()
        cfg = os.path.join(throughput.WORK, "bench-serve.yaml")
        with open(cfg, "w") as f:
            f.write(config(mqtt_port, modbus_port, http_port, serve_port))
        log_path = os.path.join(throughput.WORK, "fieldlinkd-serve.log")
        with open(log_path, "w") as log:
            d = subprocess.Popen([os.path.join(BUILD, "daemon", "fieldlinkd"), "--config", cfg, "--plugin-dir",
                                  os.path.join(BUILD, "plugins")], stdout=log, stderr=subprocess.STDOUT)
        procs.append(d)
        wait_for(lambda: "connected to cloud" in open(log_path).read(), what="fieldlinkd to connect")
        time.sleep(3)  # warm-up
        quiet1 = window(d.pid, http_port)
        busy = window(d.pid, http_port, start_clients(serve_port, 1, SECONDS))
        quiet2 = window(d.pid, http_port)
        # The baseline latency: the same clients, the same read, from the simulator.
        sim_clients = start_clients(modbus_port, 1, SECONDS)
        base = json.loads(sim_clients.communicate(timeout=SECONDS + 60)[0])
        quiet = (quiet1["polls"] + quiet2["polls"]) / 2
        print("modbus server polling: %.0f polls/s with %d clients reading | %.0f without (%.0f, %.0f) | ratio %.3f"
              % (busy["polls"], CLIENTS, quiet, quiet1["polls"], quiet2["polls"], busy["polls"] / max(quiet, 1e-9)))
        extra = busy["cpu"] - (quiet1["cpu"] + quiet2["cpu"]) / 2
        print("modbus server cpu: fieldlinkd %.3f CPU-s/s with clients | %.3f without | %.1f us of CPU per served read "
              "(%d served, %d exceptions, %d client errors)"
              % (busy["cpu"], (quiet1["cpu"] + quiet2["cpu"]) / 2, 1e6 * extra * busy["wall"] / max(busy["served"], 1),
                 busy["served"], busy["exceptions"], busy["errors"]))
        print("modbus server latency (125 registers, %d clients every %d ms): served p50 %.2f ms p99 %.2f ms | "
              "bundled simulator (libmodbus) p50 %.2f ms p99 %.2f ms | ratio p99 %.2f"
              % (CLIENTS, PERIOD_S * 1000, busy["p50"], busy["p99"], base["p50"], base["p99"],
                 busy["p99"] / max(base["p99"], 1e-9)))
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        if not os.environ.get("FIELDLINK_KEEP_BENCH_DIRS"):
            shutil.rmtree(throughput.WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
