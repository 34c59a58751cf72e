"""SD-card wear: bytes fieldlinkd causes to be written to storage per sample, at 10 devices x 20
points polled every second over Modbus TCP with the broker up, against the MQTT payload bytes per
sample. Two measures of each variant:

  device   sectors written to the block device holding data_dir (/sys/block/loopN/stat): an ext4
           file system (default options, commit=5) on a loop device made for the variant, so
           everything counts: file data, the file system's journal and metadata (root only)
  process  /proc/PID/io write_bytes - cancelled_write_bytes: pages the daemon dirtied, less those
           it truncated before the kernel wrote them back

Variants, each measured in the same run:

  sqlite           the outbox before the journal (BASELINE_BUILD_DIR, e.g. a build of 307d060),
                   status files in data_dir: the shape the issue measured
  sqlite+run       the same, status files on a tmpfs
  journal          this build, status files in data_dir (gateway.status_dir unset)
  journal+run      this build, status files on a tmpfs (the packaged configuration: /run/fieldlink)
  journal+batch    this build, store_sync: batch (every append synced: survives power loss)
  memory           store: memory, status on a tmpfs (nothing durable: the floor)

Usage:
  python3 bench/wear.py BUILD_DIR [SECONDS] [BASELINE_BUILD_DIR]
(the sqlite variants only with BASELINE_BUILD_DIR; without root, data_dir is under /var/tmp and only
the process figure is printed). Prints one summary line per variant.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from harness import free_port, wait_for  # noqa: E402

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 90.0
BASELINE = os.path.abspath(sys.argv[3]) if len(sys.argv) > 3 else None
DEVICES, POINTS = 10, 20
WARMUP = 15.0
ROOT = os.geteuid() == 0


def config(work, data_dir, status_dir, store, store_sync, mqtt, modbus):
    points = "\n".join("      - { name: p%d, area: holding, address: %d }" % (i, 10 + i) for i in range(POINTS))
    devices = "".join("""
  - name: dev%d
    cloud: local
    bus: plc
    unit: %d
    interval: 1s
    points:
%s""" % (d, d + 1, points) for d in range(DEVICES))
    status = "  status_dir: %s\n" % status_dir if status_dir else ""
    return """gateway:
  data_dir: %s
%s  store: %s
  store_sync: %s
clouds:
  local: { platform: mqtt, host: 127.0.0.1, port: %d, topic: "fl/{device}" }
buses:
  plc: { driver: modbus-tcp, host: 127.0.0.1, port: %d, timeout: 1s }
devices:%s
""" % (data_dir, status, store, store_sync, mqtt, modbus, devices)


def proc_io(pid):
    with open("/proc/%d/io" % pid) as f:
        text = f.read()
    get = lambda k: int(re.search(r"^%s: (\d+)" % k, text, re.M).group(1))  # noqa: E731
    return get("write_bytes") - get("cancelled_write_bytes")


class Disk:
    """A fresh ext4 file system on a loop device (root), or a directory under /var/tmp."""

    def __init__(self):
        self.work = tempfile.mkdtemp(prefix="fl-wear-", dir="/var/tmp")
        self.dev = None
        self.mnt = os.path.join(self.work, "mnt")
        os.mkdir(self.mnt)
        if not ROOT:
            return
        img = os.path.join(self.work, "disk.img")
        with open(img, "wb") as f:
            f.truncate(512 << 20)
        # Inode tables and the journal initialised now, not by a kernel thread during the run.
        subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", img], check=True)
        self.dev = subprocess.run(["losetup", "-f", "--show", img], check=True, capture_output=True,
                                  text=True).stdout.strip()
        subprocess.run(["mount", self.dev, self.mnt], check=True)
        os.chmod(self.mnt, 0o755)

    def written(self):
        if not self.dev:
            return 0
        with open("/sys/block/%s/stat" % os.path.basename(self.dev)) as f:
            return int(f.read().split()[6]) * 512

    def close(self):
        if self.dev:
            subprocess.run(["umount", self.mnt], check=False)
            subprocess.run(["losetup", "-d", self.dev], check=False)
        shutil.rmtree(self.work, ignore_errors=True)


def measure(build, status_dir, store, store_sync, mqtt, modbus):
    disk = Disk()
    try:
        cfg = os.path.join(disk.work, "fieldlink.yaml")
        with open(cfg, "w") as f:
            f.write(config(disk.work, os.path.join(disk.mnt, "data"), status_dir, store, store_sync, mqtt, modbus))
        sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(mqtt), "-t", "fl/#", "-F", "%l"],
                               stdout=subprocess.PIPE, text=True)
        log = open(os.path.join(disk.work, "fieldlinkd.log"), "w")
        d = subprocess.Popen([os.path.join(build, "daemon", "fieldlinkd"), "--config", cfg, "--plugin-dir",
                              os.path.join(build, "plugins")], stdout=log, stderr=subprocess.STDOUT)
        time.sleep(WARMUP)
        w0, s0 = proc_io(d.pid), disk.written()
        time.sleep(SECONDS)
        w1, s1 = proc_io(d.pid), disk.written()
        d.terminate()
        d.wait(10)
        sub.terminate()
        lengths = [int(x) for x in sub.communicate()[0].split() if x.isdigit()]
        text = open(os.path.join(disk.work, "fieldlinkd.log")).read()
        m = re.search(r"(\d+) samples sent", text)
        total_samples = int(m.group(1)) if m else 0
        payload = sum(lengths) / total_samples if total_samples else 0.0
        # samples in the window: the rate times the window (polled every second, every device answers)
        window_samples = DEVICES * POINTS * SECONDS
        return (s1 - s0) / window_samples, (w1 - w0) / window_samples, payload
    finally:
        disk.close()


def main():
    mqtt, modbus = free_port(), free_port()
    work = tempfile.mkdtemp(prefix="fl-wear-")
    broker = subprocess.Popen(["mosquitto", "-p", str(mqtt)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sim = subprocess.Popen([os.path.join(BUILD, "daemon", "fieldlink"), "simulate", "--tcp", "127.0.0.1:%d" % modbus,
                            "--units", ",".join(str(u + 1) for u in range(DEVICES)), "--tick", "100ms"],
                           stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        shm = tempfile.mkdtemp(prefix="fl-wear-status-", dir="/dev/shm")
        variants = []
        if BASELINE:
            variants += [("sqlite", BASELINE, None, "disk", "1s"), ("sqlite+run", BASELINE, shm, "disk", "1s")]
        variants += [("journal", BUILD, None, "disk", "1s"), ("journal+run", BUILD, shm, "disk", "1s"),
                     ("journal+batch", BUILD, shm, "disk", "batch"), ("memory", BUILD, shm, "memory", "1s")]
        results = {}
        for name, build, status_dir, store, sync in variants:
            results[name] = measure(build, status_dir, store, sync, mqtt, modbus)
        shutil.rmtree(shm, ignore_errors=True)
        base = results.get("sqlite", (0, 0, 0))
        for name, (device, process, payload) in results.items():
            line = "wear: %-14s device %7.1f B/sample, process %7.1f B/sample; payload %.1f B/sample: %.1fx the payload" % (
                name, device, process, payload, (device if ROOT else process) / payload if payload else 0)
            if base[0 if ROOT else 1]:
                line += ", %.3fx the sqlite outbox" % ((device if ROOT else process) / base[0 if ROOT else 1])
            print(line, flush=True)
    finally:
        broker.terminate()
        sim.terminate()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
