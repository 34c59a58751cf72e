"""Footprint on a Raspberry Pi-class target, and the size of what is shipped.

1. The demo configuration (config/demo.yaml: a sim-driver device and a Modbus TCP device from the
   bundled simulator, 9 points polled every second, published to mosquitto on loopback) run for
   SECONDS by the native amd64 build and by the arm64 and armhf cross builds under qemu-user, in
   the same run against the same broker and simulator: resident memory (VmRSS at the end, VmHWM)
   and CPU time per second of wall time (utime + stime after a 5 s settle). Under qemu-user the
   process is the emulator running the daemon: its memory includes the translator and its code
   cache, its CPU the translation; the native figure is the baseline.
2. Sizes: fieldlinkd, fieldlink and the plugins stripped, per architecture (what a Pi stores);
   the Debian package (.deb and installed size); the container image against its base.

Usage: python3 bench/pi.py NATIVE_BUILD [ARM64_BUILD] [ARMHF_BUILD] [SECONDS]
(missing cross trees or image are reported and skipped)
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from harness import free_port, proc_status, wait_for  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
NATIVE = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
CROSS = {"arm64": (os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else "build-arm64"), "qemu-aarch64-static",
                   "aarch64-linux-gnu-strip"),
         "armhf": (os.path.abspath(sys.argv[3] if len(sys.argv) > 3 else "build-armhf"), "qemu-arm-static",
                   "arm-linux-gnueabihf-strip")}
SECONDS = int(sys.argv[4]) if len(sys.argv) > 4 else 30
WORK = tempfile.mkdtemp(prefix="fl-pi-")
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def run_demo(arch, build, under, env):
    run_dir = os.path.join(WORK, arch)
    os.makedirs(os.path.join(run_dir, "demo-run"))  # the demo keeps its data in ./demo-run/data
    sub_log = os.path.join(run_dir, "sub.log")
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", env["FIELDLINK_DEMO_MQTT_PORT"], "-t",
                            "fieldlink/+", "-F", "%U %t"],
                           stdout=open(sub_log, "w"), stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    d = subprocess.Popen(under + [os.path.join(build, "daemon", "fieldlinkd"), "--config",
                                  os.path.join(ROOT, "config", "demo.yaml"), "--plugin-dir",
                                  os.path.join(build, "plugins")], cwd=run_dir, env=env,
                         stdout=subprocess.DEVNULL, stderr=open(os.path.join(run_dir, "fieldlinkd.log"), "w"))
    wait_for(lambda: os.path.getsize(sub_log) > 0, timeout=60, what="a publish from the %s build" % arch)
    time.sleep(5)
    c0, t0 = cpu_seconds(d.pid), time.monotonic()
    time.sleep(max(1, SECONDS - 5))
    cpu_ms_per_s = (cpu_seconds(d.pid) - c0) * 1000 / (time.monotonic() - t0)
    rss, hwm = proc_status(d.pid, "VmRSS:") / 1024, proc_status(d.pid, "VmHWM:") / 1024
    d.terminate()
    rc = d.wait(20)
    sub.terminate()
    sub.wait(5)
    messages = sum(1 for _ in open(sub_log))
    return rss, hwm, cpu_ms_per_s, messages, rc


def stripped_kib(build, strip):
    files = [os.path.join(build, "daemon", "fieldlinkd"), os.path.join(build, "daemon", "fieldlink")]
    files += glob.glob(os.path.join(build, "plugins", "*.so"))
    total = 0
    for f in files:
        out = os.path.join(WORK, "stripped")
        subprocess.run([strip, "-o", out, f], check=True)
        total += os.path.getsize(out)
    return total // 1024


def main():
    procs = []
    mqtt_port, modbus_port = free_port(), free_port()
    with open(os.path.join(WORK, "mosquitto.conf"), "w") as f:
        f.write("listener %d 127.0.0.1\nallow_anonymous true\n" % mqtt_port)
    procs.append(subprocess.Popen(["mosquitto", "-c", os.path.join(WORK, "mosquitto.conf")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    sim = subprocess.Popen([os.path.join(NATIVE, "daemon", "fieldlink"), "simulate", "--tcp",
                            "127.0.0.1:%d" % modbus_port, "--units", "1"], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    procs.append(sim)
    sim.stdout.readline()  # ready
    env = dict(os.environ, FIELDLINK_DEMO_MQTT_PORT=str(mqtt_port), FIELDLINK_DEMO_MODBUS_PORT=str(modbus_port))
    try:
        results = {}
        runs = [("amd64", NATIVE, [])] + [(a, b, [q]) for a, (b, q, _) in CROSS.items()]
        for arch, build, under in runs:
            if not os.path.exists(os.path.join(build, "daemon", "fieldlinkd")):
                print("pi footprint: %s: no build in %s (bash scripts/cross.sh %s), skipped" % (arch, build, arch))
                continue
            env["FIELDLINK_DEMO_HTTP_PORT"] = str(free_port())
            results[arch] = run_demo(arch, build, under, env)
        base = results.get("amd64")
        parts = []
        for arch, (rss, hwm, cpu, msgs, rc) in results.items():
            how = "native" if arch == "amd64" else "under qemu-user"
            ratio = "" if arch == "amd64" or not base else " (x%.1f rss, x%.1f cpu)" % (rss / base[0], cpu / base[2])
            parts.append("%s %s rss %.1f MB (peak %.1f), cpu %.1f ms/s, %d messages, exit %d%s"
                         % (arch, how, rss, hwm, cpu, msgs, rc, ratio))
        print("pi footprint (demo: 2 devices, 9 points, 1 s polls, %d s): %s" % (SECONDS, " | ".join(parts)))
        sizes = ["amd64 %d KiB" % stripped_kib(NATIVE, "strip")]
        for arch, (build, _, strip) in CROSS.items():
            if os.path.exists(os.path.join(build, "daemon", "fieldlinkd")) and shutil.which(strip):
                sizes.append("%s %d KiB" % (arch, stripped_kib(build, strip)))
        print("pi storage (fieldlinkd + fieldlink + plugins, stripped): " + " | ".join(sizes))
        debs = glob.glob(os.path.join(NATIVE, "fieldlink_*.deb"))
        if debs:
            installed = subprocess.run(["dpkg-deb", "-f", debs[0], "Installed-Size"], capture_output=True,
                                       text=True).stdout.strip()
            print("package: %s %d KiB, installed %s KiB" % (os.path.basename(debs[0]), os.path.getsize(debs[0]) // 1024,
                                                           installed))
        else:
            print("package: no .deb in %s (cpack in that tree builds it), skipped" % NATIVE)
        if shutil.which("podman"):
            def size(image):
                p = subprocess.run(["podman", "image", "inspect", "--format", "{{.Size}}", image], capture_output=True,
                                   text=True)
                return int(p.stdout) if p.returncode == 0 else None
            image, base_image = size("localhost/fieldlink:latest"), size("localhost/fieldlink-base:bookworm")
            if image and base_image:
                print("container image: localhost/fieldlink:latest %.1f MB | base (debootstrap minbase, slimmed) "
                      "%.1f MB | fieldlink's layers %.1f MB" % (image / 1e6, base_image / 1e6, (image - base_image) / 1e6))
            else:
                print("container image: not built (bash scripts/container.sh), skipped")
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        if os.environ.get("FIELDLINK_KEEP_BENCH") is None:
            shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
