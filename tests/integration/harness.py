"""Integration test harness: real mosquitto, real Modbus server, real fieldlinkd, loopback only.

Paths come from the environment set by ctest (FIELDLINK_BIN_DIR, FIELDLINK_PLUGIN_DIR,
FIELDLINK_EMULATOR). Every process started here is stopped by the test's cleanup.
"""
import base64
import hashlib
import hmac
import json
import os
import pwd
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

BIN = os.path.abspath(os.environ.get("FIELDLINK_BIN_DIR", "build/daemon"))
PLUGINS = os.path.abspath(os.environ.get("FIELDLINK_PLUGIN_DIR", "build/plugins"))
EMULATOR = os.path.abspath(os.environ.get("FIELDLINK_EMULATOR", "build/test-plugins/onenet_emulator.so"))
MOSQUITTO = os.environ.get("MOSQUITTO", "/usr/sbin/mosquitto")
# Cross-built binaries run under an emulator (qemu-user): its command, empty for native ones.
RUN_UNDER = os.environ.get("FIELDLINK_RUN_UNDER", "").split()
OBSERVER = ("observer", "observer-secret")


def raise_nofile():
    """Children get the hard descriptor limit as their soft one (brokers with thousands of clients)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def proc_status(pid, key):
    """A number from /proc/PID/status (e.g. 'VmRSS:' in kB, 'Threads:')."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, method="GET"):
    """(status, body) of one request; (0, "") when nothing listens (yet) or the connection is reset."""
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, ConnectionError):
        # (a connection reset while the server is at its connection limit, as after a flood of
        # idle ones it has not finished closing: not reachable yet)
        return 0, ""


def wait_for(predicate, timeout=10.0, step=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("timed out waiting for " + what)


def onenet_token(pid, device, key_b64, method="sha256", et=2524579200):
    """Reference token from protocols.md §1.4, written independently of the daemon."""
    res = "products/%s/devices/%s" % (pid, device)
    msg = "\n".join([str(et), method, res, "2018-10-31"]).encode()
    sign = base64.b64encode(hmac.new(base64.b64decode(key_b64), msg, getattr(hashlib, method)).digest()).decode()
    q = lambda v: urllib.parse.quote(v, safe="")
    return "version=2018-10-31&res=%s&et=%d&method=%s&sign=%s" % (q(res), et, method, q(sign))


class Procs:
    """Starts processes and files in a scratch directory; stops everything on close()."""

    def __init__(self, test):
        self.dir = tempfile.mkdtemp(prefix="fl-it-")
        self.procs = []
        self.test = test
        test.addCleanup(self.close)

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, text):
        with open(self.path(name), "w") as f:
            f.write(text)
        return self.path(name)

    def start(self, args, log_name, stdin=None, env=None, preexec_fn=raise_nofile):
        log = open(self.path(log_name), "w")
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=stdin, env=env,
                             cwd=self.dir, text=True, preexec_fn=preexec_fn)
        log.close()  # the child has its own descriptor
        self.procs.append(p)
        return p

    def read(self, name):
        try:
            with open(self.path(name)) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def failed(self):
        """Whether this test has failed so far (unittest reports failures to its result at once)."""
        result = getattr(getattr(self.test, "_outcome", None), "result", None)
        if result is None:
            return True  # unknown: keep the files
        return any(t is self.test for t, _ in list(result.failures) + list(result.errors))

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(3)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            for stream in (p.stdin, p.stdout):
                if stream:
                    stream.close()
        # The scratch directory (logs, configurations, stores) stays for a test that failed, or
        # with FIELDLINK_KEEP_TEST_DIRS set; otherwise it goes.
        if not self.failed() and not os.environ.get("FIELDLINK_KEEP_TEST_DIRS"):
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print("test files kept in %s" % self.dir, file=sys.stderr)


class Broker:
    """mosquitto on a free loopback port; optionally with the OneNET emulator plugin."""

    def __init__(self, procs, devices=None, rate=1.0, port=None, extra=(), platform="onenet", persistent=False):
        self.procs = procs
        self.port = port or free_port()
        self.violations = procs.path("violations.log")
        self.emulated = devices is not None
        self.log_name = "mosquitto-%d.log" % self.port
        lines = ["listener %d 127.0.0.1" % self.port, "log_type all", "log_dest file " + procs.path(self.log_name),
                 "log_timestamp_format %H:%M:%S",
                 # persistent: the broker keeps its subscribers' queued messages across its restarts
                 "persistence %s" % ("true" if persistent else "false"), "persistence_location " + procs.dir + "/",
                 "max_queued_messages 100000",
                 # As root, mosquitto would drop to its own user and lose access to the scratch dir.
                 "user " + pwd.getpwuid(os.getuid()).pw_name]
        if devices is not None:
            keys = procs.write("devices.txt", "".join("%s %s %s\n" % d for d in devices))
            lines += ["allow_anonymous false", "plugin " + os.path.abspath(EMULATOR),
                      "plugin_opt_devices " + keys, "plugin_opt_violations " + self.violations,
                      "plugin_opt_rate %g" % rate, "plugin_opt_observer %s:%s" % OBSERVER,
                      "plugin_opt_platform " + platform, "plugin_opt_record " + procs.path("received.log"),
                      "plugin_opt_state " + procs.path("platform-state.txt")]
        else:
            lines.append("allow_anonymous true")
        lines += list(extra)
        self.conf = procs.write("mosquitto-%d.conf" % self.port, "\n".join(lines) + "\n")
        self.start()

    def start(self):
        self.proc = self.procs.start([MOSQUITTO, "-c", self.conf], "mosquitto-%d.out" % self.port)
        wait_for(self._listening, what="mosquitto to listen")

    def _listening(self):
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def log(self):
        return self.procs.read(self.log_name)

    def received(self):
        """Every PUBLISH the emulator accepted from a device: (unix time, topic, payload)."""
        out = []
        for line in self.procs.read("received.log").splitlines():
            parts = line.split(" ", 2)
            if len(parts) == 3:
                out.append((float(parts[0]), parts[1], parts[2]))
        return out

    def violation_lines(self):
        """What the emulator recorded, and every client that set a will message (OneNET refuses
        a will; the emulator cannot see one at CONNECT, the broker's log does)."""
        lines = [l for l in self.procs.read("violations.log").splitlines() if l.strip()]
        connected = ""
        for l in self.log().splitlines() if self.emulated else []:
            if "New client connected" in l:
                connected = l
            elif "Will message specified" in l and "u'%s'" % OBSERVER[0] not in connected:
                client = connected.split(" as ", 1)[1].split(" ", 1)[0] if " as " in connected else "?"
                lines.append("%s: will message set (OneNET refuses a will; clean session, no will)" % client)
        return lines

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)

    def publish(self, topic, payload):
        """Publishes as the observer (allowed everywhere), e.g. a platform command."""
        args = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.port), "-q", "0", "-t", topic, "-s"]
        if self.emulated:
            args += ["-u", OBSERVER[0], "-P", OBSERVER[1]]
        subprocess.run(args, input=payload.encode(), check=True, timeout=10)


class Subscriber:
    """mosquitto_sub recording '<unix time> <topic> <payload>' lines."""

    def __init__(self, procs, broker, topics, name="sub.log", hex_payload=False, persistent=False):
        self.procs = procs
        self.name = name
        args = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-F",
                "%U %t %x" if hex_payload else "%U %t %p"]
        if persistent:  # a durable session: nothing published while it reconnects is lost to it
            args += ["-c", "-i", "observer-" + name.replace(".", "-")]
        if broker.emulated:
            args += ["-u", OBSERVER[0], "-P", OBSERVER[1]]
        for t in topics:
            args += ["-t", t]
        before = broker.log().count("Received SUBSCRIBE")
        self.proc = procs.start(args, name)
        wait_for(lambda: broker.log().count("Received SUBSCRIBE") > before, what="subscription")

    def messages(self):
        out = []
        for line in self.procs.read(self.name).splitlines():
            parts = line.split(" ", 2)
            if len(parts) == 3:
                out.append((float(parts[0]), parts[1], parts[2]))
        return out

    def json_messages(self, topic):
        return [(t, json.loads(p)) for (t, tp, p) in self.messages() if tp == topic]

    def raw_messages(self, topic):
        """Payloads as bytes (mosquitto_sub -F %x prints hex), for binary protocols."""
        return [bytes.fromhex(p) for (_, tp, p) in self.messages() if tp == topic]


class Simulator:
    """`fieldlink simulate`, driven through its stdin control lines."""

    def __init__(self, procs, tcp_port=None, rtu=None, units=None, tick="100ms", name="sim.log", config=None):
        args = RUN_UNDER + [os.path.join(BIN, "fieldlink"), "simulate", "--tick", tick]
        if config:  # the configuration's units, each point holding a plausible value
            args += ["--config", config]
        if units or not config:
            args += ["--units", ",".join(map(str, units or (1,)))]
        if tcp_port:
            args += ["--tcp", "127.0.0.1:%d" % tcp_port]
        if rtu:
            args += ["--rtu", rtu]
        self.procs = procs
        self.name = name
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1, preexec_fn=raise_nofile)
        procs.procs.append(self.proc)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise AssertionError("simulator did not start: " + line + self.proc.stdout.read())

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)

    def cmd(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline().strip()
        if not (reply == "ok" or reply.startswith("ok ") or reply.startswith("requests")):
            raise AssertionError("simulator: %s -> %s" % (line, reply))
        return reply

    def get(self, unit, area, address, count=1):
        """The words (or bits) the simulator holds now, as the test's own independent read."""
        return [int(w) for w in self.cmd("get %d %s %d %d" % (unit, area, address, count)).split()[1:]]


def pty_pair(procs, name="tty", with_process=False):
    """A socat pty pair: returns (gateway_side, device_side) paths (and the socat process)."""
    a, b = procs.path(name + "A"), procs.path(name + "B")
    p = procs.start(["socat", "-d", "-d", "pty,raw,echo=0,link=" + a, "pty,raw,echo=0,link=" + b], name + "-socat.log")
    wait_for(lambda: os.path.exists(a) and os.path.exists(b), what="socat ptys")
    return (a, b, p) if with_process else (a, b)


def tcp_to_pty(procs, port, name="conv"):
    """A serial-to-Ethernet converter: TCP port <-> pty (RTU frames over TCP)."""
    dev = procs.path(name + "-tty")
    # socat opens the pty first, then waits for the gateway's TCP connection.
    procs.start(["socat", "-d", "-d", "pty,raw,echo=0,link=" + dev,
                 "tcp-listen:%d,bind=127.0.0.1,reuseaddr" % port], name + "-socat.log")
    wait_for(lambda: os.path.exists(dev), what="converter pty")
    return dev


class Daemon:
    def __init__(self, procs, config_text, name="fieldlinkd.log", extra=(), data_dir=None, env=None):
        self.procs = procs
        self.name = name
        self.data_dir = data_dir or procs.path("data")
        self.config = procs.write("config.yaml", self._with_data_dir(config_text))
        self.proc = procs.start(RUN_UNDER + [os.path.join(BIN, "fieldlinkd"), "--config", self.config,
                                 "--plugin-dir", PLUGINS] + list(extra), name, env=env)

    def _with_data_dir(self, config_text):
        """Every daemon keeps its outbox in the test's scratch directory."""
        if "\ngateway:\n" in "\n" + config_text.lstrip("\n"):
            return config_text.replace("gateway:\n", "gateway:\n  data_dir: %s\n" % self.data_dir, 1)
        if "\ngateway: {" in "\n" + config_text.lstrip("\n"):  # flow style: a second gateway key would win
            return config_text.replace("gateway: {", "gateway: { data_dir: %s," % self.data_dir, 1)
        return "gateway:\n  data_dir: %s\n" % self.data_dir + config_text

    def rewrite_config(self, config_text):
        """Replaces the configuration file (for reload tests), keeping the scratch data_dir."""
        with open(self.config, "w") as f:
            f.write(self._with_data_dir(config_text))

    def log(self):
        return self.procs.read(self.name)

    def stop(self):
        """SIGTERM; returns (exit status, seconds until exit)."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(10)
        return rc, time.monotonic() - t0


def run_cli(args, env=None):
    p = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
    return p.returncode, p.stdout, p.stderr
