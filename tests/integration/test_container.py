"""The container image (issue 10, item 3), built and run with podman and runc (root):

- scripts/container.sh builds it from deploy/container/Dockerfile (multi-stage) on a Debian 12
  base made with debootstrap (no registry is reachable here);
- the image runs as a non-root user, has the configuration and the data as volumes, and a
  HEALTHCHECK;
- run with the host's network, it polls the bundled simulator over Modbus TCP on the host's
  loopback and over RTU through a socat pty, and publishes both devices to a broker on the host's
  loopback; a real UART (a node of this machine's /dev/ttyS0, group dialout) passed with
  --device is opened by the non-root user and polled (nothing Modbus answers on it: timeouts); its health check passes, `fieldlink status` inside reads the status, and
  `podman stop` ends it with exit status 0, its outbox on the data volume.

A pty is bind-mounted (-v), not passed with --device: a pty node made in the container's own
/dev/pts instance cannot reach the host's pty (open() fails with EIO). Real adapters
(/dev/ttyUSB0, /dev/ttyAMA0) go with --device, as the UART here does.

The image size is printed for the benchmark (bench/footprint.py reads it)."""
import json
import os
import re
import shutil
import stat
import subprocess
import unittest
import uuid

from harness import Broker, Procs, Simulator, Subscriber, free_port, wait_for

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
IMAGE = "localhost/fieldlink:test"
PODMAN = ["podman", "--runtime", "runc"]
UID = 10001  # the image's fieldlink user (deploy/container/Dockerfile)


def podman(*args, check=True, timeout=120):
    p = subprocess.run(PODMAN + list(args), capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("podman %s: exit %d\n%s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
    return p


def limits():
    """This machine's descriptor limit and a modest process limit: podman's defaults are higher
    than a process without CAP_SYS_RESOURCE may set."""
    hard = int(subprocess.run(["sh", "-c", "ulimit -Hn"], capture_output=True, text=True).stdout)
    return ["--ulimit", "nofile=%d:%d" % (hard, hard), "--ulimit", "nproc=4096:4096"]


@unittest.skipUnless(os.geteuid() == 0 and shutil.which("podman"), "rootful podman: root with podman installed")
class ContainerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        p = subprocess.run(["bash", os.path.join(ROOT, "scripts", "container.sh"), IMAGE], capture_output=True,
                           text=True, timeout=1800)
        print(p.stdout + p.stderr, end="")
        if p.returncode != 0:
            raise AssertionError("scripts/container.sh failed (exit %d)" % p.returncode)

    def test_image_shape(self):
        info = json.loads(podman("image", "inspect", IMAGE).stdout)[0]
        config = info["Config"]
        self.assertEqual(config["User"], "fieldlink")
        self.assertEqual(set(config["Volumes"]), {"/etc/fieldlink", "/var/lib/fieldlink"})
        health = info.get("Healthcheck") or info.get("HealthCheck") or config.get("Healthcheck") or {}
        self.assertEqual(health.get("Test", [])[:3], ["CMD", "fieldlink", "status"])
        self.assertEqual(config["Entrypoint"], ["fieldlinkd"])
        # Only the runtime: no compiler came along from the build stage.
        p = podman("run", "--rm", "--network", "none", *limits(), "--entrypoint", "sh", IMAGE, "-c",
                   "command -v g++ cmake || true; id -u; fieldlinkd --version")
        lines = p.stdout.split()
        self.assertNotIn("/usr/bin/g++", lines)
        self.assertEqual(lines[0], str(UID))
        print("image %s: %d KiB" % (IMAGE, info["Size"] // 1024))

    def test_polls_tcp_and_serial_publishes_and_is_healthy(self):
        procs = Procs(self)
        broker = Broker(procs)
        sub = Subscriber(procs, broker, ["fl/#"])
        modbus_port = free_port()
        # The RTU line: the simulator on one end of a pty pair, the container given the other.
        host_end, sim_end = procs.path("tty-gw"), procs.path("tty-sim")
        procs.start(["socat", "-d", "-d", "pty,raw,echo=0,link=" + host_end, "pty,raw,echo=0,link=" + sim_end],
                    "socat.log")
        wait_for(lambda: os.path.exists(host_end) and os.path.exists(sim_end), what="the pty pair")
        sim = Simulator(procs, tcp_port=modbus_port, rtu=sim_end, units=(1, 2))
        sim.cmd("set 1 holding 10 2150")
        sim.cmd("set 2 holding 10 1234")
        tty = os.path.realpath(host_end)
        os.chmod(tty, 0o660)
        os.chown(tty, 0, 20)  # group dialout, as a USB adapter's node is on Debian
        # A real UART for --device: a node of the same device as /dev/ttyS0, in group dialout.
        uart = None
        if os.path.exists("/dev/ttyS0") and stat.S_ISCHR(os.stat("/dev/ttyS0").st_mode):
            uart = procs.path("ttyS0")
            os.mknod(uart, 0o660 | stat.S_IFCHR, os.stat("/dev/ttyS0").st_rdev)
            os.chown(uart, 0, 20)
            os.chmod(uart, 0o660)  # (mknod applies the umask)

        etc = procs.path("etc")
        data = procs.path("data")
        os.makedirs(etc)
        os.makedirs(data)
        os.chmod(etc, 0o755)
        os.chown(data, UID, UID)
        uart_bus = "  uart: { driver: modbus-rtu, device: /dev/ttyS0, baud: 9600, timeout: 200ms }\n" if uart else ""
        uart_device = ("  - { name: uart-probe, cloud: host, bus: uart, unit: 7, interval: 500ms,\n"
                       "      points: [ { name: v, area: holding, address: 0 } ] }\n") if uart else ""
        with open(os.path.join(etc, "fieldlink.yaml"), "w") as f:
            f.write(f"""
gateway:
  data_dir: /var/lib/fieldlink
clouds:
  host: {{ platform: mqtt, host: 127.0.0.1, port: {broker.port}, topic: "fl/{{device}}" }}
buses:
  plc: {{ driver: modbus-tcp, host: 127.0.0.1, port: {modbus_port}, timeout: 1s }}
  rs485: {{ driver: modbus-rtu, device: /dev/ttyFL0, baud: 9600, timeout: 1s }}
{uart_bus}devices:
  - {{ name: tcp-meter, cloud: host, bus: plc, unit: 1, interval: 500ms,
      points: [ {{ name: temp, area: holding, address: 10, type: uint16, scale: 0.01 }} ] }}
  - {{ name: rtu-meter, cloud: host, bus: rs485, unit: 2, interval: 500ms,
      points: [ {{ name: temp, area: holding, address: 10, type: uint16, scale: 0.01 }} ] }}
{uart_device}""")
        os.chmod(os.path.join(etc, "fieldlink.yaml"), 0o644)
        name = "fieldlink-test-" + uuid.uuid4().hex[:8]
        self.addCleanup(lambda: podman("rm", "-f", "-t", "0", name, check=False))
        podman("run", "-d", "--name", name, "--network", "host", *limits(), "-v", etc + ":/etc/fieldlink:ro",
               "-v", data + ":/var/lib/fieldlink", "-v", tty + ":/dev/ttyFL0",
               *(["--device", uart + ":/dev/ttyS0"] if uart else []), IMAGE)

        def values(device):
            return [json.loads(p)["values"]["temp"] for _, t, p in sub.messages() if t == "fl/" + device]

        try:
            wait_for(lambda: 21.5 in values("tcp-meter") and 12.34 in values("rtu-meter"), timeout=60,
                     what="both devices' values from the container")
        except AssertionError:
            print(podman("logs", name, check=False).stderr)
            raise
        wait_for(lambda: podman("healthcheck", "run", name, check=False).returncode == 0, timeout=30,
                 what="the container's health check to pass")
        out = podman("exec", name, "fieldlink", "status", "--config", "/etc/fieldlink/fieldlink.yaml").stdout
        self.assertIn("tcp-meter", out)
        self.assertIn("rtu-meter", out)
        if uart:
            wait_for(lambda: "uart-probe (unit 7): no response" in podman("logs", name).stderr, timeout=30,
                     what="a poll on the UART passed with --device")
        podman("stop", "-t", "20", name, timeout=60)
        self.assertEqual(podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip(), "0")
        logs = podman("logs", name)
        log = logs.stderr + logs.stdout
        self.assertIn("signal SIGTERM: stopping", log)
        if uart:  # opened by the non-root user and polled: requests written, no answer (nothing Modbus on it)
            print("\n".join(l for l in log.splitlines() if "uart" in l))
            m = re.search(r"device uart-probe: (\d+) polls, 0 ok, (\d+) timeouts", log)
            self.assertTrue(m, log)
            self.assertGreater(int(m.group(2)), 0, m.group(0))
            self.assertNotIn("cannot open /dev/ttyS0", log)
        # The outbox is on the data volume: what was not yet acknowledged at the stop waits there.
        self.assertRegex(log, r"store: \d+ batch\(es\) queued on disk")
        self.assertTrue(any(f.startswith("outbox") or f.endswith(".db") for f in os.listdir(data)), os.listdir(data))


if __name__ == "__main__":
    unittest.main()
