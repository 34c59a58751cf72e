"""Hostile input and unlucky operators (issue 20), on the real binary against a real broker, all on
loopback; bounded loops only (a few hundred connections, tens of megabytes at most):

- HTTP (item 2): a request with 100,000 header lines of 1 KB is refused early (431 or the
  connection closed) and the daemon does not grow; two slowloris connections do not hold up
  /healthz and /metrics; 300 idle connections are bounded (refused past the limit, counted in
  /metrics, logged once), closed when idle, and the gateway is reachable again at once after;
  data keeps flowing to the broker throughout;
- SIGTERM right after SIGHUP (item 3), ten times: the daemon exits 0 within its stop time, and a
  reload keeps the HTTP server (its port never refuses a connection across reloads)."""
import os
import socket
import threading
import time
import unittest

from harness import Broker, Daemon, Procs, Subscriber, free_port, http_get, wait_for


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def config(broker_port, http_port, extra=""):
    return f"""
gateway:
  http: 127.0.0.1:{http_port}
{extra}
clouds:
  c: {{ platform: mqtt, host: 127.0.0.1, port: {broker_port}, topic: "fl/{{device}}" }}
buses:
  plc: {{ driver: sim }}
devices:
  - {{ name: meter, cloud: c, bus: plc, interval: 200ms,
      points: [ {{ name: temperature, area: holding, address: 0 }} ] }}
"""


def metric(port, name):
    code, body = http_get("http://127.0.0.1:%d/metrics" % port)
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


class HostileHttpTest(unittest.TestCase):
    def setUp(self):
        self.procs = Procs(self)
        self.broker = Broker(self.procs)
        self.sub = Subscriber(self.procs, self.broker, ["fl/#"])
        self.http = free_port()
        self.daemon = Daemon(self.procs, config(self.broker.port, self.http))
        wait_for(lambda: http_get("http://127.0.0.1:%d/healthz" % self.http)[0] == 200, timeout=15,
                 what="the status server")

    def flowing(self):
        """Samples still arrive at the broker (a new one within 5 s)."""
        n = len(self.sub.messages())
        wait_for(lambda: len(self.sub.messages()) > n, timeout=5, what="data still flowing to the broker")

    def test_a_header_bomb_is_refused_early_and_memory_stays(self):
        before = rss_kib(self.daemon.proc.pid)
        s = socket.create_connection(("127.0.0.1", self.http), timeout=10)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        line = b"X-Filler: " + b"a" * 1000 + b"\r\n"
        sent = 0
        try:
            for _ in range(100_000):
                s.sendall(line)
                sent += len(line)
        except OSError:
            pass  # closed by the server: what we want
        answer = b""
        try:
            s.settimeout(5)
            answer = s.recv(4096)
        except OSError:
            pass
        s.close()
        self.assertLess(sent, 50 << 20, "the server read %d bytes of headers before refusing" % sent)
        if answer:
            self.assertRegex(answer.split(b"\r\n")[0], rb"HTTP/1\.[01] 4(31|13|00)")
        after = rss_kib(self.daemon.proc.pid)
        print("header bomb: refused after %d KB sent; RSS %d -> %d KiB" % (sent // 1024, before, after))
        self.assertLess(after - before, 20 * 1024, "RSS grew by %d KiB" % (after - before))
        self.assertEqual(http_get("http://127.0.0.1:%d/healthz" % self.http)[0], 200)
        self.flowing()

    def test_slowloris_does_not_hold_up_health_and_metrics(self):
        stop = threading.Event()

        def slow():
            s = socket.create_connection(("127.0.0.1", self.http))
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            while not stop.is_set():
                try:
                    s.sendall(b"X-a: b\r\n")
                except OSError:
                    break
                stop.wait(1)
            s.close()

        threads = [threading.Thread(target=slow) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            time.sleep(1)
            for i in range(20):
                t0 = time.monotonic()
                path = "/healthz" if i % 2 else "/metrics"
                code, _ = http_get("http://127.0.0.1:%d%s" % (self.http, path))
                self.assertEqual(code, 200, "%s answered %d under slowloris" % (path, code))
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.flowing()

    def test_idle_connections_are_bounded_counted_and_closed(self):
        held = []
        for _ in range(300):
            try:
                held.append(socket.create_connection(("127.0.0.1", self.http), timeout=5))
            except OSError:
                break
        # Past the limit the server closes at once: a read sees the end.
        time.sleep(1)
        closed = 0
        for s in held:
            s.settimeout(0.01)
            try:
                if s.recv(1) == b"":
                    closed += 1
            except socket.timeout:
                pass
            except OSError:
                closed += 1
        self.assertGreaterEqual(closed, 300 - 64, "connections past the limit were not refused")
        self.flowing()
        # The idle ones are closed by the server after its idle time (10 s).
        t0 = time.monotonic()
        for s in held:
            s.settimeout(20)
            try:
                s.recv(1)
            except OSError:
                pass
        waited = time.monotonic() - t0
        self.assertLess(waited, 25, "idle connections were kept")
        for s in held:
            s.close()
        wait_for(lambda: http_get("http://127.0.0.1:%d/healthz" % self.http)[0] == 200, timeout=5,
                 what="reachable again once they are gone")
        self.assertGreaterEqual(metric(self.http, "fieldlink_http_refused_total"), 300 - 64)
        log = self.daemon.log()
        self.assertEqual(log.count("further ones are refused"), 1, log[-3000:])
        print("idle connections: %d of 300 refused at once, the rest closed after %.1f s" % (closed, waited))


class StopDuringReloadTest(unittest.TestCase):
    def test_sigterm_right_after_sighup_stops_cleanly(self):
        procs = Procs(self)
        broker = Broker(procs)
        for i in range(10):
            http = free_port()
            d = Daemon(procs, config(broker.port, http), name="d%d.log" % i)
            wait_for(lambda: http_get("http://127.0.0.1:%d/healthz" % http)[0] == 200, timeout=15,
                     what="the status server")
            d.proc.send_signal(1)  # SIGHUP
            rc, secs = d.stop()    # SIGTERM at once; waits at most 10 s
            self.assertEqual(rc, 0, d.log()[-2000:])
            self.assertLess(secs, 10)

    def test_a_reload_keeps_the_http_server(self):
        procs = Procs(self)
        broker = Broker(procs)
        http = free_port()
        d = Daemon(procs, config(broker.port, http, "  store_max_bytes: 10MB"))
        wait_for(lambda: http_get("http://127.0.0.1:%d/healthz" % http)[0] == 200, timeout=15, what="the status server")
        codes = []
        stop = threading.Event()

        def poll():
            while not stop.is_set():
                codes.append(http_get("http://127.0.0.1:%d/healthz" % http)[0])

        t = threading.Thread(target=poll)
        t.start()
        try:
            for i in range(5):
                # A change of the gateway settings (the store's budget) restarts everything but the
                # server; a change of a device only what changed.
                extra = "  store_max_bytes: %dMB" % (10 + i % 2) if i < 3 else "  store_max_bytes: 11MB"
                text = config(broker.port, http, extra)
                d.rewrite_config(text if i < 3 else text.replace("interval: 200ms", "interval: %d00ms" % i))
                d.proc.send_signal(1)
                time.sleep(1)
        finally:
            stop.set()
            t.join()
        self.assertNotIn(0, codes, "the port refused a connection during a reload")
        self.assertTrue(set(codes) <= {200, 503}, codes)
        self.assertIn("everything restarts", d.log())
        self.assertEqual(d.stop()[0], 0)


if __name__ == "__main__":
    unittest.main()


class StoreLockTest(unittest.TestCase):
    """Item 4: a second daemon on the same data_dir refuses to start; a store another process holds
    locked is waited for, then refused, and never moved aside as corrupt."""

    def test_a_second_daemon_on_the_same_data_dir_refuses_to_start(self):
        procs = Procs(self)
        broker = Broker(procs)
        sub = Subscriber(procs, broker, ["fl/#"])
        data = procs.path("shared-data")
        first = Daemon(procs, config(broker.port, free_port()), name="first.log", data_dir=data)
        wait_for(lambda: len(sub.messages()) >= 2, timeout=15, what="the first daemon publishing")
        second = Daemon(procs, config(broker.port, free_port()), name="second.log", data_dir=data)
        self.assertEqual(second.proc.wait(30), 1, second.log())
        self.assertIn("in use by PID %d" % first.proc.pid, second.log())
        self.assertIsNone(first.proc.poll())
        n = len(sub.messages())
        wait_for(lambda: len(sub.messages()) > n, timeout=5, what="the first daemon still publishing")
        self.assertEqual(first.stop()[0], 0)

    def test_a_locked_store_is_waited_for_and_refused_never_moved_aside(self):
        import sqlite3
        procs = Procs(self)
        broker_port = free_port()  # no broker yet: batches queue in the store
        data = procs.path("locked-data")
        d = Daemon(procs, config(broker_port, free_port()), name="queue.log", data_dir=data)
        time.sleep(3)
        self.assertEqual(d.stop()[0], 0)
        queued = int(__import__("re").search(r"store: (\d+) batch\(es\) queued on disk", d.log()).group(1))
        self.assertGreater(queued, 5)

        holder = sqlite3.connect(os.path.join(data, "outbox.db"), isolation_level=None)
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("INSERT INTO meta VALUES ('held', 'by a test')")
        locked = Daemon(procs, config(broker_port, free_port()), name="locked.log", data_dir=data)
        self.assertEqual(locked.proc.wait(60), 1, locked.log())
        self.assertIn("is locked by PID %d" % os.getpid(), locked.log())
        self.assertEqual([f for f in os.listdir(data) if ".corrupt-" in f], [], "a busy store was moved aside")
        holder.rollback()
        holder.close()

        broker = Broker(procs, port=broker_port)
        sub = Subscriber(procs, broker, ["fl/#"])
        again = Daemon(procs, config(broker_port, free_port()), name="again.log", data_dir=data)
        wait_for(lambda: "queued batch(es) from before" in again.log(), timeout=15, what="the store replayed")
        self.assertIn("%d queued batch(es) from before" % queued, again.log())
        wait_for(lambda: len(sub.messages()) >= queued, timeout=30, what="the queued batches delivered")
        self.assertEqual(again.stop()[0], 0)


class LogInjectionTest(unittest.TestCase):
    """Item 5: text from the cloud in the log: a command id with a newline cannot forge a line,
    terminal escapes are escaped, and a 200 KB id does not make 200 KB of log per message."""

    def test_a_command_id_cannot_forge_flood_or_colour_the_log(self):
        import json
        procs = Procs(self)
        broker = Broker(procs)
        d = Daemon(procs, f"""
gateway:
  log_level: info
clouds:
  c: {{ platform: mqtt, host: 127.0.0.1, port: {broker.port}, topic: "fl/{{device}}", command_topic: "fl/{{device}}/set" }}
buses:
  plc: {{ driver: sim }}
devices:
  - {{ name: meter, cloud: c, bus: plc, interval: 500ms,
      points: [ {{ name: level, area: holding, address: 3, writable: true }} ] }}
""")
        wait_for(lambda: "connected to cloud c" in d.log(), timeout=15, what="the session")
        sub = Subscriber(procs, broker, ["fl/meter/set/reply"])
        forged = "x\n2026-12-06T00:00:00.000 critical [core] FORGED LINE \x1b[31mred\x1b[0m"
        huge = "y" * 200_000
        before = len(d.log())
        for i in range(10):
            broker.publish("fl/meter/set", json.dumps({"level": i, "id": forged if i % 2 else huge + str(i)}))
        wait_for(lambda: len(sub.messages()) >= 10, timeout=30, what="every write answered")
        log = d.log()[before:]
        for line in log.splitlines():
            self.assertNotIn("critical [core] FORGED", line[:60], "a forged line: " + line[:200])
        self.assertIn("\\n2026-12-06T00:00:00.000 critical [core] FORGED LINE \\x1b[31m", log)
        self.assertNotIn("\x1b", log)
        self.assertLess(len(log), 10 * 4096 + 4000, "the log grew by %d bytes for 10 writes" % len(log))
        self.assertIn("more bytes)", log)
        self.assertEqual(d.stop()[0], 0)


class ConfigurationTest(unittest.TestCase):
    """Item 6: what the daemon cannot honour is refused by --check (duplicate keys, names that are
    no MQTT topic level, an oversized file), and a key file others can read is warned about."""

    def check(self, procs, text, name="c.yaml"):
        import subprocess
        from harness import BIN, PLUGINS
        path = procs.write(name, text)
        p = subprocess.run([os.path.join(BIN, "fieldlinkd"), "--check", "--config", path, "--plugin-dir", PLUGINS],
                           capture_output=True, text=True, timeout=60)
        return p.returncode, p.stdout + p.stderr

    def test_check_refuses_and_warns(self):
        procs = Procs(self)
        base = """
clouds:
  c: {{ platform: onenet, host: 127.0.0.1, product_id: "469948" }}
buses:
  b: {{ driver: sim }}
devices:
  - {{ name: {name}, cloud: c, bus: b, {key}, points: [ {{ name: p, area: holding, address: 0{extra} }} ] }}
"""
        key = procs.write("device.key", "c2VjcmV0LWtleS1tdXN0LW5vdC1sZWFrLTEyMzQ=\n")
        os.chmod(key, 0o644)
        rc, out = self.check(procs, base.format(name="d1", key="key_file: " + key, extra=""))
        self.assertEqual(rc, 0, out)
        self.assertIn("can be read by every user of this machine (mode 0644)", out)
        os.chmod(key, 0o640)
        rc, out = self.check(procs, base.format(name="d1", key="key_file: " + key, extra=""))
        self.assertNotIn("can be read by every user", out)
        self.assertNotIn("outside the configuration's directory", out)
        import tempfile
        elsewhere = tempfile.mkdtemp(prefix="fl-keys-")
        self.addCleanup(__import__("shutil").rmtree, elsewhere, True)
        outside = os.path.join(elsewhere, "device.key")
        with open(outside, "w") as f:
            f.write("c2VjcmV0LWtleS1tdXN0LW5vdC1sZWFrLTEyMzQ=\n")
        os.chmod(outside, 0o600)
        linked = procs.path("linked.key")
        os.symlink(outside, linked)
        rc, out = self.check(procs, base.format(name="d1", key="key_file: " + linked, extra=""))
        self.assertEqual(rc, 0, out)
        self.assertIn("is a symlink to '%s', outside the configuration's directory" % outside, out)
        rc, out = self.check(procs, base.format(name="d1", key="key_file: " + key, extra=", address: 5"))
        self.assertEqual(rc, 2, out)
        self.assertIn("key 'address' given twice", out)
        mqtt = base.replace('platform: onenet, host: 127.0.0.1, product_id: "469948"', "platform: mqtt, host: 127.0.0.1")
        rc, out = self.check(procs, mqtt.format(name='"+"', key="unit: 1", extra=""))
        self.assertEqual(rc, 2, out)
        self.assertIn("MQTT wildcards", out)
        rc, out = self.check(procs, "x: " + "a" * (5 << 20) + "\n")
        self.assertEqual(rc, 2, out)
        self.assertIn("a configuration is read up to 4 MiB", out)
        self.assertNotIn("c2VjcmV0LWtleS1tdXN0LW5vdC1sZWFr", out, "secrets never appear in the output")
