"""gateway.modbus_server against mbpoll (Debian's, a Modbus client nobody on the project wrote):
the real fieldlinkd polls the bundled simulator over Modbus TCP and serves what it read; mbpoll
reads every mapped type and word order and gets the values the device holds, writes a writable
point (written on the device through the checked write path, and read back), is refused for a
read-only point, a value out of range and an unmapped address; 50 clients read at once; a client
that connects and sends nothing is closed after idle_timeout and holds nobody up; a unit that
stops answering is served as an exception, not as its old value; values go on being served while
the broker is down; a reload moves a served point under a connected client; clients past
max_clients are closed and counted."""
import json
import re
import signal
import socket
import struct
import subprocess
import time
import unittest

from harness import Broker, Daemon, Procs, Simulator, free_port, http_get, wait_for


def mbpoll(port, *args):
    out = subprocess.run(["mbpoll", "-m", "tcp", "-p", str(port), "-0", "-1", "-o", "2"] + list(args) + ["127.0.0.1"],
                         capture_output=True, text=True, timeout=30)
    return out.returncode, out.stdout + out.stderr


def mbpoll_write(port, *args):
    out = subprocess.run(["mbpoll", "-m", "tcp", "-p", str(port), "-0", "-o", "2"] + list(args),
                         capture_output=True, text=True, timeout=30)
    return out.returncode, out.stdout + out.stderr


def values(text):
    """The '[address]: value' lines mbpoll prints."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and "]:" in line:
            addr, value = line[1:].split("]:", 1)
            out[int(addr)] = value.strip()
    return out


class ModbusServerTest(unittest.TestCase):
    def setUp(self):
        self.procs = Procs(self)
        self.broker = Broker(self.procs)
        modbus = free_port()
        self.sim = Simulator(self.procs, tcp_port=modbus, units=(1,))
        # The device's registers: 1234; -2; 21.5 (abcd); -1.25 (cdab); 123456789 (abcd int32).
        self.sim.cmd("set 1 holding 20 1234 65534 16812 0 0 49056 1883 52501")
        self.sim.cmd("set 1 holding 30 50")
        self.port = free_port()
        self.http = free_port()
        self.config = """
gateway:
  http: 127.0.0.1:%d
  modbus_server:
    listen: 127.0.0.1:%d
    max_clients: 60
    idle_timeout: 2s
    map:
      - { device: plc, point: u16, area: holding, address: 0 }
      - { device: plc, point: i16, area: holding, address: 1 }
      - { device: plc, point: f32, area: holding, address: 2 }
      - { device: plc, point: f32le, area: holding, address: 4 }
      - { device: plc, point: i32, area: input, address: 0 }
      - { device: plc, point: setpoint, area: holding, address: 10 }
clouds:
  local: { platform: mqtt, host: 127.0.0.1, port: %d }
buses:
  line: { driver: modbus-tcp, host: 127.0.0.1, port: %d, timeout: 300ms, retries: 0, backoff_max: 1s }
devices:
  - name: plc
    cloud: local
    bus: line
    unit: 1
    interval: 200ms
    points:
      - { name: u16, area: holding, address: 20 }
      - { name: i16, area: holding, address: 21, type: int16 }
      - { name: f32, area: holding, address: 22, type: float32 }
      - { name: f32le, area: holding, address: 24, type: float32, order: cdab }
      - { name: i32, area: holding, address: 26, type: int32 }
      - { name: setpoint, area: holding, address: 30, writable: true, min: 0, max: 1000 }
"""
        self.modbus = modbus
        self.daemon = Daemon(self.procs, self.config % (self.http, self.port, self.broker.port, modbus))
        wait_for(lambda: "Modbus TCP server on" in self.daemon.log(), what="the Modbus server")
        wait_for(lambda: mbpoll(self.port, "-a", "1", "-r", "0", "-c", "1", "-t", "4")[0] == 0, what="a first value")

    def test_every_type_and_order_reads_as_the_device_holds_it(self):
        rc, out = mbpoll(self.port, "-a", "1", "-r", "0", "-c", "2", "-t", "4")
        self.assertEqual(rc, 0, out)
        self.assertEqual(values(out), {0: "1234", 1: "65534 (-2)"})  # mbpoll shows both readings
        rc, out = mbpoll(self.port, "-a", "1", "-r", "2", "-c", "1", "-t", "4:float", "-B")  # abcd
        self.assertEqual(values(out), {2: "21.5"}, out)
        rc, out = mbpoll(self.port, "-a", "1", "-r", "4", "-c", "1", "-t", "4:float")  # mbpoll's default: cdab
        self.assertEqual(values(out), {4: "-1.25"}, out)
        rc, out = mbpoll(self.port, "-a", "1", "-r", "0", "-c", "1", "-t", "3:int", "-B")
        self.assertEqual(values(out), {0: "123456789"}, out)

    def test_writes_go_through_the_write_path_and_refusals_touch_nothing(self):
        rc, out = mbpoll_write(self.port, "-a", "1", "-r", "10", "-t", "4", "127.0.0.1", "321")
        self.assertEqual(rc, 0, out)
        self.assertEqual(self.sim.get(1, "holding", 30), [321])
        wait_for(lambda: values(mbpoll(self.port, "-a", "1", "-r", "10", "-c", "1", "-t", "4")[1]) == {10: "321"},
                 what="the value read back served")
        rc, out = mbpoll_write(self.port, "-a", "1", "-r", "10", "-t", "4", "127.0.0.1", "5000")
        self.assertIn("Illegal data value", out)
        rc, out = mbpoll_write(self.port, "-a", "1", "-r", "0", "-t", "4", "127.0.0.1", "7")
        self.assertIn("Illegal data address", out)  # read-only
        rc, out = mbpoll(self.port, "-a", "1", "-r", "40", "-c", "1", "-t", "4")
        self.assertIn("Illegal data address", out)  # not mapped
        self.assertEqual(self.sim.get(1, "holding", 30), [321])
        self.assertEqual(self.sim.get(1, "holding", 20), [1234])

    def test_fifty_clients_at_once_and_an_idle_one(self):
        idle = socket.create_connection(("127.0.0.1", self.port))
        clients = [subprocess.Popen(["mbpoll", "-m", "tcp", "-p", str(self.port), "-0", "-a", "1", "-r", "0", "-c",
                                     "2", "-t", "4", "-l", "10", "-o", "2", "127.0.0.1"],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                   for _ in range(50)]
        time.sleep(3)
        outputs = []
        for c in clients:
            c.terminate()
            outputs.append(c.communicate(timeout=10)[0])
        for out in outputs:
            self.assertNotIn("failed", out)
            self.assertIn("[0]: \t1234", out)
        # The idle client was closed after idle_timeout (2 s) and held nobody up.
        idle.settimeout(5)
        self.assertEqual(idle.recv(1), b"")
        idle.close()
        # What the status page and /metrics say of it.
        runtime = json.loads(http_get("http://127.0.0.1:%d/api/runtime" % self.http)[1])["modbus_server"]
        self.assertEqual(runtime["listen"], "127.0.0.1:%d" % self.port)
        self.assertGreaterEqual(runtime["requests"], 50)
        self.assertGreaterEqual(runtime["clients_idle"], 1)
        metrics = http_get("http://127.0.0.1:%d/metrics" % self.http)[1]
        self.assertIn("fieldlink_modbus_server_clients 0", metrics)
        requests = re.search(r"^fieldlink_modbus_server_requests_total (\d+)$", metrics, re.M)
        self.assertTrue(requests and int(requests.group(1)) >= 50, metrics)

    def test_values_go_on_being_served_while_the_cloud_is_down(self):
        self.broker.stop()
        wait_for(lambda: "connection to cloud local lost" in self.daemon.log(), what="the session to notice")
        self.sim.cmd("set 1 holding 20 4321")
        wait_for(lambda: values(mbpoll(self.port, "-a", "1", "-r", "0", "-c", "1", "-t", "4")[1]) == {0: "4321"},
                 what="the new value served with the broker down")
        self.broker.start()

    def test_clients_past_max_clients_are_closed_and_counted(self):
        held = [socket.create_connection(("127.0.0.1", self.port)) for _ in range(60)]  # max_clients: 60
        for c in held:
            c.settimeout(5)
        self.assertEqual(read_holding(held[-1], 0, 1), [1234])  # all 60 are served
        extra = socket.create_connection(("127.0.0.1", self.port))
        extra.settimeout(5)
        self.assertEqual(extra.recv(1), b"")  # closed at once
        extra.close()
        self.assertEqual(read_holding(held[0], 0, 1), [1234])
        runtime = json.loads(http_get("http://127.0.0.1:%d/api/runtime" % self.http)[1])["modbus_server"]
        self.assertEqual(runtime["clients"], 60)
        self.assertEqual(runtime["clients_refused"], 1)
        for c in held:
            c.close()

    def test_a_unit_that_stops_answering_is_served_as_an_exception(self):
        self.sim.cmd("off 1")
        wait_for(lambda: "failed to respond" in mbpoll(self.port, "-a", "1", "-r", "0", "-c", "1", "-t", "4")[1],
                 what="the exception")
        self.sim.cmd("on 1")
        wait_for(lambda: values(mbpoll(self.port, "-a", "1", "-r", "0", "-c", "1", "-t", "4")[1]) == {0: "1234"},
                 timeout=15, what="the value once it answers")

    def test_a_reload_changes_the_map_and_keeps_clients_connected(self):
        client = socket.create_connection(("127.0.0.1", self.port))
        client.settimeout(5)
        self.assertEqual(read_holding(client, 0, 1), [1234])
        # The served u16 moves from 0 to 100; the device side and the cloud stay as they are.
        self.daemon.rewrite_config(self.config.replace("point: u16, area: holding, address: 0",
                                                       "point: u16, area: holding, address: 100")
                                   % (self.http, self.port, self.broker.port, self.modbus))
        self.daemon.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "SIGHUP: reloaded" in self.daemon.log(), what="the reload")
        log = self.daemon.log()
        self.assertIn("1 client(s) stay connected", log)
        self.assertIn("1 session(s) kept connected, 0 stopped, 0 started", log)
        self.assertEqual(read_holding(client, 100, 1), [1234])  # the same connection, the new map
        self.assertEqual(read_holding(client, 0, 1), 2)  # no longer served: illegal data address
        self.assertEqual(read_holding(client, 1, 1), [65534])
        client.close()


def read_holding(sock, address, count, unit=1):
    """One FC3 request on an open Modbus TCP connection: the registers, or the exception code."""
    sock.sendall(struct.pack(">HHHBBHH", 9, 0, 6, unit, 3, address, count))
    head = b""
    while len(head) < 9:
        head += sock.recv(9 - len(head))
    tid, proto, length, _, fc, n = struct.unpack(">HHHBBB", head)
    if fc & 0x80:
        return n
    body = b""
    while len(body) < n:
        body += sock.recv(n - len(body))
    return list(struct.unpack(">%dH" % count, body))


if __name__ == "__main__":
    unittest.main()
