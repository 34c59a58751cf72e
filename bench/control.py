"""Command-to-reply latency of a write from the cloud (issue 9): a command on the generic MQTT
command topic, through fieldlinkd (checked, queued ahead of polls on the bus worker, FC16 write,
read-back, reply), until its reply arrives; against, in the same run, the bare libmodbus write plus
read-back of the same float32 on the same server. Modbus TCP on loopback, and Modbus RTU at
115200 baud over a socat pty pair. Commands go one at a time (the next after the reply).

Usage: python3 bench/control.py BUILD_DIR [COMMANDS]
Prints one summary line per figure.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from harness import free_port, wait_for  # noqa: E402

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
N = int(sys.argv[2]) if len(sys.argv) > 2 else 500
WORK = tempfile.mkdtemp(prefix="fl-bench-control-")
TOOL = os.path.join(BUILD, "bench", "control_latency")


def measure(args):
    out = subprocess.run([TOOL] + [str(a) for a in args], capture_output=True, text=True, timeout=600).stdout.split()
    return dict(zip(out[::2], (float(x) for x in out[1::2])))


def main():
    procs = []
    try:
        mqtt_port, modbus_port = free_port(), free_port()
        conf = os.path.join(WORK, "mosquitto.conf")
        with open(conf, "w") as f:
            # Like a production broker tuned for request/reply (mosquitto's default keeps Nagle on).
            f.write("listener %d 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n" % mqtt_port)
        procs.append(subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        sim = os.path.join(BUILD, "daemon", "fieldlink")
        procs.append(subprocess.Popen([sim, "simulate", "--tcp", "127.0.0.1:%d" % modbus_port, "--units", "1"],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
        gw, dev = os.path.join(WORK, "ttyA"), os.path.join(WORK, "ttyB")
        procs.append(subprocess.Popen(["socat", "pty,raw,echo=0,link=" + gw, "pty,raw,echo=0,link=" + dev],
                                      stderr=subprocess.DEVNULL))
        wait_for(lambda: os.path.exists(gw) and os.path.exists(dev), what="socat ptys")
        procs.append(subprocess.Popen([sim, "simulate", "--rtu", dev, "--baud", "115200", "--units", "1"],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
        time.sleep(0.5)
        bare_tcp = measure(["modbus", "tcp", "127.0.0.1", modbus_port, 1, N])
        bare_rtu = measure(["modbus", "rtu", gw, 115200, 1, N // 2])

        devices = "".join(f"""
  - name: {name}
    cloud: local
    bus: {bus}
    unit: 1
    interval: 1s
    points:
      - {{ name: setpoint, area: holding, address: 10, type: float32, writable: true }}
      - {{ name: count, area: holding, address: 0, type: uint32 }}""" for name, bus in (("t1", "tcp"), ("r1", "rtu")))
        cfg = os.path.join(WORK, "fieldlinkd.yaml")
        with open(cfg, "w") as f:
            f.write(f"""gateway: {{ data_dir: {WORK}/data, log_level: info }}
clouds:
  local: {{ platform: mqtt, host: 127.0.0.1, port: {mqtt_port}, command_topic: "fl/{{device}}/set" }}
buses:
  tcp: {{ driver: modbus-tcp, host: 127.0.0.1, port: {modbus_port} }}
  rtu: {{ driver: modbus-rtu, device: {gw}, baud: 115200 }}
devices:{devices}
""")
        log = os.path.join(WORK, "fieldlinkd.log")
        with open(log, "w") as out:
            procs.append(subprocess.Popen([os.path.join(BUILD, "daemon", "fieldlinkd"), "--config", cfg,
                                           "--plugin-dir", os.path.join(BUILD, "plugins")], stdout=out, stderr=out))
        wait_for(lambda: os.path.exists(os.path.join(WORK, "data", "status.json")), timeout=20, what="fieldlinkd")
        time.sleep(1)
        gw_tcp = measure(["mqtt", mqtt_port, "t1", N])
        gw_rtu = measure(["mqtt", mqtt_port, "r1", N // 2])
        for name, g, b in (("Modbus TCP on loopback", gw_tcp, bare_tcp), ("Modbus RTU 115200 over a pty", gw_rtu, bare_rtu)):
            print("command-to-reply, %s: p50 %.2f ms, p99 %.2f ms (max %.2f, %d commands, %d failed); bare "
                  "write+read-back p50 %.2f ms, p99 %.2f ms; p99 ratio %.2f%s"
                  % (name, g["p50_us"] / 1000, g["p99_us"] / 1000, g["max_us"] / 1000, g["n"], g["failures"],
                     b["p50_us"] / 1000, b["p99_us"] / 1000, g["p99_us"] / max(b["p99_us"], 1),
                     "; target p99 < 20 ms: %s" % ("met" if g["p99_us"] < 20000 else "NOT met")
                     if "TCP" in name else ""))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        if os.environ.get("FIELDLINK_KEEP_BENCH_DIR"):
            print("kept " + WORK)
        else:
            shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
