"""At the scale the product claims, with real parts: 2,000 OneNET device sessions (each its own
identity, checked by the emulator) fed by real Modbus servers, 1,600 devices on eight Modbus TCP
buses and 400 on two RTU lines through socat pty pairs. The servers (and the ptys) come up only
after every session has logged in, so each bus opens its descriptor when thousands of sockets
already hold the low numbers, and they restart twice mid-run. libmodbus waits with select(): a
descriptor at FD_SETSIZE or above would abort the daemon. Every session must publish after each
start, and the daemon must stay up; RSS, threads and descriptors are reported."""
import os
import time
import unittest

from harness import Broker, Daemon, Procs, Simulator, free_port, proc_status, wait_for

PID, KEY = "469948", "kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI="
TCP_BUSES, RTU_BUSES, PER_BUS = 8, 2, 200
SESSIONS = (TCP_BUSES + RTU_BUSES) * PER_BUS


def config(procs, broker_port, tcp_port):
    buses = "".join("  tcp%d: { driver: modbus-tcp, host: 127.0.0.1, port: %d, timeout: 500ms, retries: 0, backoff_max: 2s }\n"
                    % (b, tcp_port) for b in range(TCP_BUSES))
    buses += "".join("  rtu%d: { driver: modbus-rtu, device: %s, baud: 115200, timeout: 200ms, retries: 0, backoff_max: 2s }\n"
                     % (b, procs.path("rtu%dA" % b)) for b in range(RTU_BUSES))
    devices = []
    names = ["tcp%d" % b for b in range(TCP_BUSES)] + ["rtu%d" % b for b in range(RTU_BUSES)]
    for bus in names:
        for unit in range(1, PER_BUS + 1):
            devices.append("  - { name: %s-%d, cloud: onenet, bus: %s, unit: %d, interval: 2s, "
                           "points: [ { name: v, area: holding, address: 10 } ] }" % (bus, unit, bus, unit))
    return """
gateway: { log_level: info }
clouds:
  onenet: { platform: onenet, host: 127.0.0.1, port: %d, product_id: "%s", product_key: %s }
buses:
%sdevices:
%s
""" % (broker_port, PID, KEY, buses, "\n".join(devices))


class Servers:
    """The Modbus side: one TCP simulator for the eight TCP buses, and per RTU line a socat pty
    pair with a simulator on its device end. Started late, restarted on demand."""

    def __init__(self, procs, tcp_port):
        self.procs, self.tcp_port, self.sims, self.socats = procs, tcp_port, [], []

    def start(self):
        units = list(range(1, PER_BUS + 1))
        self.sims.append(Simulator(self.procs, tcp_port=self.tcp_port, units=units, name="sim-tcp.log"))
        for b in range(RTU_BUSES):
            a, dev = self.procs.path("rtu%dA" % b), self.procs.path("rtu%dB" % b)
            self.socats.append(self.procs.start(["socat", "pty,raw,echo=0,link=" + a, "pty,raw,echo=0,link=" + dev],
                                                "socat-rtu%d.log" % b))
            wait_for(lambda: os.path.exists(a) and os.path.exists(dev), what="socat ptys")
            self.sims.append(Simulator(self.procs, rtu=dev, units=units, name="sim-rtu%d.log" % b))

    def stop(self):
        for s in self.sims:
            s.stop()
        for p in self.socats:
            p.terminate()
            p.wait(5)
        self.sims, self.socats = [], []


def modbus_descriptors(pid, tcp_port):
    """The daemon's descriptors that libmodbus uses: TCP sockets to the Modbus port, and ptys."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in list(f)[1:]:
                cols = line.split()
                if int(cols[2].split(":")[1], 16) == tcp_port:
                    inodes.add(cols[9])
    out = []
    for n in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, n))
        except OSError:
            continue
        if target.startswith("/dev/pts/") or (target.startswith("socket:[") and target[8:-1] in inodes):
            out.append(int(n))
    return sorted(out)


def publishers_since(broker, t0):
    """Device names that published after t0 (emulator record)."""
    out = set()
    for arrival, topic, _ in broker.received():
        if arrival >= t0 and topic.endswith("/dp/post/json"):
            out.add(topic.split("/")[2])
    return out


class ScaleTest(unittest.TestCase):
    def test_2000_sessions_on_real_modbus_buses_that_start_late_and_restart(self):
        procs = Procs(self)
        broker = Broker(procs, devices=[(PID, "*", KEY)], rate=1)
        tcp_port = free_port()
        daemon = Daemon(procs, config(procs, broker.port, tcp_port))
        wait_for(lambda: "all %d sessions connected" % SESSIONS in daemon.log(), timeout=120,
                 what="all sessions to log in")
        pid = daemon.proc.pid
        fds_sessions = len(os.listdir("/proc/%d/fd" % pid))
        # One descriptor per session (libmosquitto's unused wake-up pair is refused): the TCP
        # sockets of the sessions already sit far above FD_SETSIZE.
        self.assertLess(fds_sessions, SESSIONS + 200)
        self.assertGreater(fds_sessions, 1100)

        servers = Servers(procs, tcp_port)
        for start in range(3):  # first start, then two restarts
            t0 = time.time()
            servers.start()
            wait_for(lambda: len(publishers_since(broker, t0 + 0.5)) == SESSIONS, timeout=120, step=1,
                     what="every session to publish after start %d" % start)
            self.assertIsNone(daemon.proc.poll(), "the daemon must stay up")
            # Every descriptor libmodbus waits on is below FD_SETSIZE, though opened last.
            links = modbus_descriptors(daemon.proc.pid, tcp_port)
            self.assertEqual(len(links), TCP_BUSES + RTU_BUSES, links)
            self.assertLess(max(links), 1024, links)
            if start < 2:
                servers.stop()
                time.sleep(3)  # the buses notice: timeouts and refused connections, backoff

        rss_mb = proc_status(pid, "VmRSS:") / 1024
        threads = proc_status(pid, "Threads:")
        fds = len(os.listdir("/proc/%d/fd" % pid))
        print("scale: %d sessions on %d Modbus TCP + %d RTU buses, servers started late and restarted twice: "
              "rss %.1f MB, %d threads, %d descriptors" % (SESSIONS, TCP_BUSES, RTU_BUSES, rss_mb, threads, fds))
        # Ours: the north loop, the store's checkpoints and one per bus (named fl-*), plus main:
        # fixed, whatever the session count (a sanitizer's runtime may add its own).
        names = [open("/proc/%d/task/%s/comm" % (pid, t)).read().strip() for t in os.listdir("/proc/%d/task" % pid)]
        self.assertEqual(sorted(n for n in names if n.startswith("fl-")),
                         sorted(["fl-north", "fl-checkpoint"] + ["fl-bus:tcp%d" % b for b in range(TCP_BUSES)] +
                                ["fl-bus:rtu%d" % b for b in range(RTU_BUSES)]))
        self.assertEqual(daemon.stop()[0], 0)
        log = daemon.log()
        self.assertNotIn("FD_SETSIZE on fd_set", log)
        self.assertNotIn("no descriptor number below FD_SETSIZE", log)
        self.assertEqual(broker.violation_lines(), [])


if __name__ == "__main__":
    unittest.main()
