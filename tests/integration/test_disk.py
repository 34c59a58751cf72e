"""A full or failing disk never stops the gateway (issue 19, item 3), on the real binary with a
small tmpfs as data_dir (root: mount), the bundled Modbus simulator over TCP and a real broker:

- filled while the broker is down: the daemon keeps polling, says so once (log, /healthz,
  /metrics), counts what it cannot store; the broker back: everything stored before the disk
  filled is delivered (acks work on the full disk: the reserve is given up for them) and live
  data flows; space freed: storing resumes by itself;
- filled by a ballast file while the broker is up and the queue empty: live data keeps flowing;
- the disk failing (I/O errors, then read-only: a device-mapper error target under ext4) where
  device-mapper is available.
The status files go to their own directory (gateway.status_dir, a tmpfs in production), so
/api/status stays current while the data disk refuses writes.
Nothing here may crash the daemon (it would be restarted into the same wall under systemd)."""
import json
import os
import subprocess
import time
import unittest

from harness import Broker, Daemon, Procs, Simulator, Subscriber, free_port, http_get, wait_for


def fill(path):
    """Writes a ballast file until the file system is full."""
    subprocess.run(["dd", "if=/dev/zero", "of=" + path, "bs=16k"], capture_output=True)


def delivered_ts(sub):
    """The acquisition times (ms) of every sample batch the broker got, in order received."""
    out = []
    for _, _, payload in sub.messages():
        try:
            out.append(json.loads(payload)["ts"])
        except (ValueError, KeyError, TypeError):
            pass
    return out


@unittest.skipUnless(os.geteuid() == 0, "mounting a small tmpfs needs root")
class DiskTest(unittest.TestCase):
    def setUp(self):
        self.procs = Procs(self)
        self.disk = self.procs.path("disk")
        os.makedirs(self.disk)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", self.disk], check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", self.disk])
        self.modbus = free_port()
        self.sim = Simulator(self.procs, tcp_port=self.modbus, units=(1,), tick="50ms")
        self.http = free_port()

    def start(self, broker_port):
        # 40 more values a batch (~1 KB/s): the store needs new pages every few seconds, so a full
        # disk shows soon (smaller batches fit for a while in pages and a log the store reuses).
        more = "".join("      - {{ name: x{0}, area: holding, address: {0} }}\n".format(a) for a in range(10, 50))
        return Daemon(self.procs, f"""
gateway:
  http: "127.0.0.1:{self.http}"
  store_sync: 200ms
  status_dir: {self.procs.path("status")}
clouds:
  c: {{ platform: mqtt, host: 127.0.0.1, port: {broker_port}, keepalive: 5s, topic: "fl/{{device}}",
       payload: '{{"ts":{{ts_ms}},"values":{{values}}}}' }}
buses:
  plc: {{ driver: modbus-tcp, host: 127.0.0.1, port: {self.modbus}, timeout: 1s }}
devices:
  - name: meter
    cloud: c
    bus: plc
    unit: 1
    interval: 50ms
    points:
      - {{ name: counter, area: holding, address: 0, type: uint32 }}
      - {{ name: r5, area: holding, address: 5 }}
{more}""", data_dir=self.disk)

    def ext4(self, name, options):
        """A fresh 32 MB ext4 on a loop device, mounted with `options`; skips without loop devices."""
        image = self.procs.path(name + ".img")
        subprocess.run(["truncate", "-s", "32M", image], check=True)
        subprocess.run(["mkfs.ext4", "-q", image], check=True)
        disk = self.procs.path(name)
        os.makedirs(disk)
        if subprocess.run(["mount", "-o", options, image, disk]).returncode != 0:
            self.skipTest("no loop device to mount an ext4 image on")
        self.addCleanup(subprocess.run, ["umount", "-l", disk])
        return disk

    def health(self):
        return http_get("http://127.0.0.1:%d/healthz" % self.http)

    def metric(self, name):
        for line in http_get("http://127.0.0.1:%d/metrics" % self.http)[1].splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def status(self):
        code, body = http_get("http://127.0.0.1:%d/api/status" % self.http)
        return json.loads(body) if code == 200 else {}

    def test_filled_while_the_broker_is_down_then_broker_back_then_space_freed(self):
        port = free_port()
        daemon = self.start(port)
        wait_for(lambda: self.status().get("store", {}).get("queued_batches", 0) >= 40, timeout=20,
                 what="batches stored while the broker is down")
        t_fill = time.time() * 1000
        fill(os.path.join(self.disk, "ballast"))
        wait_for(lambda: "cannot write" in daemon.log(), timeout=20, what="the store saying it cannot write")
        wait_for(lambda: self.health()[0] == 503, timeout=10, what="/healthz saying so")
        self.assertIn("cannot write", self.health()[1])
        self.assertEqual(self.metric("fieldlink_disk_writable"), 0)
        time.sleep(2)  # polling goes on meanwhile
        self.assertIsNone(daemon.proc.poll(), daemon.log())
        stored = self.status()["store"]["appended"]

        broker = Broker(self.procs, port=port)
        sub = Subscriber(self.procs, broker, ["fl/#"])
        # Everything stored before the disk filled is delivered and acknowledged, on the full disk.
        wait_for(lambda: self.status().get("store", {}).get("acked", 0) >= stored, timeout=60,
                 what="every stored batch acknowledged (%d)" % stored)
        t_live = time.time() * 1000
        wait_for(lambda: any(ts > t_live for ts in delivered_ts(sub)), timeout=20, what="live data on the full disk")
        self.assertIsNone(daemon.proc.poll(), daemon.log())
        before = sorted(ts for ts in delivered_ts(sub) if ts < t_fill)
        self.assertGreaterEqual(len(before), 40)
        # polled every 50 ms: no hole in what was stored before the disk filled
        gaps = [b - a for a, b in zip(before, before[1:]) if b - a > 1000]
        self.assertEqual(gaps, [], "stored data lost before %d" % t_fill)
        # Live data on the still full disk for longer than the journal's 5 s turn: the few pages an
        # emptied journal gives back do not end the episode (they are full again at once), else
        # the log would say "writable again" and "cannot write" every few seconds.
        time.sleep(7)
        log = daemon.log()
        self.assertNotIn("writable again", log)
        self.assertEqual(log.count("cannot write: "), 1, "one line per episode:\n" + log)
        self.assertEqual(self.health()[0], 503)

        os.unlink(os.path.join(self.disk, "ballast"))
        wait_for(lambda: "writable again" in daemon.log(), timeout=20, what="the store writable again")
        wait_for(lambda: self.health()[0] == 200, timeout=10, what="/healthz healthy again")
        appended = self.status()["store"]["appended"]
        wait_for(lambda: self.status()["store"]["appended"] > appended + 10, timeout=10, what="storing resumed")
        log = daemon.log()
        self.assertEqual(log.count("cannot write: "), 1, "one line per episode:\n" + log)
        self.assertNotIn("terminate called", log)
        self.assertGreater(self.status()["store"]["dropped_unwritable"], 0)
        self.assertEqual(daemon.stop()[0], 0, log)

    def test_ballast_fills_the_disk_while_the_broker_is_up(self):
        """With the queue empty the store may not even notice (its WAL is reused in place); live
        data must flow either way, and a broker outage then meets the full disk."""
        broker = Broker(self.procs)
        sub = Subscriber(self.procs, broker, ["fl/#"])
        daemon = self.start(broker.port)
        wait_for(lambda: len(delivered_ts(sub)) >= 20, timeout=20, what="live data")
        fill(os.path.join(self.disk, "ballast"))
        t_full = time.time() * 1000
        wait_for(lambda: len([ts for ts in delivered_ts(sub) if ts > t_full + 1000]) >= 20, timeout=20,
                 what="live data flowing on the full disk")
        self.assertIsNone(daemon.proc.poll(), daemon.log())
        code, body = self.health()
        self.assertTrue(code == 200 or "cannot write" in body, body)
        # The broker goes away: what is polled now needs room the disk does not have.
        broker.stop()
        wait_for(lambda: self.health()[0] == 503, timeout=20, what="/healthz saying the store cannot write")
        self.assertEqual(self.metric("fieldlink_disk_writable"), 0)
        broker.start()
        t_back = time.time() * 1000
        wait_for(lambda: len([ts for ts in delivered_ts(sub) if ts > t_back]) >= 20, timeout=30,
                 what="live data after the broker came back, on the full disk")
        os.unlink(os.path.join(self.disk, "ballast"))
        wait_for(lambda: self.health()[0] == 200, timeout=20, what="healthy again")
        self.assertIsNone(daemon.proc.poll(), daemon.log())
        self.assertEqual(daemon.stop()[0], 0, daemon.log())

    def test_the_file_system_goes_read_only_under_the_daemon(self):
        """ext4 on a loop device with errors=remount-ro, and an error triggered through ext4's own
        sysfs switch: the file system turns read-only under the running daemon, as a failing SD
        card's does (a plain remount,ro is refused while files are open for writing)."""
        disk = self.ext4("ext4", "loop,errors=remount-ro")
        dev = os.path.basename(subprocess.run(["findmnt", "-n", "-o", "SOURCE", disk], capture_output=True,
                                              text=True).stdout.strip())
        trigger = "/sys/fs/ext4/%s/trigger_fs_error" % dev
        if not os.path.exists(trigger):
            self.skipTest("this kernel's ext4 has no trigger_fs_error")
        self.disk = disk
        broker = Broker(self.procs)
        sub = Subscriber(self.procs, broker, ["fl/#"])
        daemon = self.start(broker.port)
        wait_for(lambda: len(delivered_ts(sub)) >= 20, timeout=20, what="live data")
        with open(trigger, "w") as f:
            f.write("test: the card fails\n")
        t_ro = time.time() * 1000
        wait_for(lambda: self.health()[0] == 503, timeout=10, what="/healthz saying the disk refuses writes")
        self.assertIn("cannot write", self.health()[1])
        wait_for(lambda: len([ts for ts in delivered_ts(sub) if ts > t_ro + 1000]) >= 20, timeout=20,
                 what="live data flowing on a read-only disk")
        self.assertIsNone(daemon.proc.poll(), daemon.log())
        self.assertEqual(self.metric("fieldlink_disk_writable"), 0)
        self.assertIn("cannot write", daemon.log())
        self.assertEqual(daemon.stop()[0], 0, daemon.log())

    def test_started_on_a_read_only_file_system(self):
        """A card that turned read-only before the daemon starts (a reboot after the failure): the
        gateway runs on without its durable store, live data flows, and it says why."""
        disk = self.ext4("ro", "loop")
        self.disk = disk
        port = free_port()
        daemon = self.start(port)  # no broker: batches queue in the store
        wait_for(lambda: self.status().get("store", {}).get("queued_batches", 0) >= 20, timeout=20,
                 what="batches stored")
        self.assertEqual(daemon.stop()[0], 0)
        subprocess.run(["mount", "-o", "remount,ro", disk], check=True)
        broker = Broker(self.procs, port=port)
        sub = Subscriber(self.procs, broker, ["fl/#"])
        again = self.start(port)
        t0 = time.time() * 1000
        wait_for(lambda: len([ts for ts in delivered_ts(sub) if ts > t0]) >= 20, timeout=20,
                 what="live data without the store")
        self.assertIsNone(again.proc.poll(), again.log())
        code, body = self.health()
        self.assertEqual(code, 503)
        self.assertIn("could not be opened", body)
        self.assertIn("WITHOUT the durable store", again.log())
        self.assertEqual(again.stop()[0], 0, again.log())
        # The stored batches are still there for a start on a writable card.
        subprocess.run(["mount", "-o", "remount,rw", disk], check=True)
        self.assertTrue(os.path.getsize(os.path.join(disk, "outbox.db")) > 0)


if __name__ == "__main__":
    unittest.main()
