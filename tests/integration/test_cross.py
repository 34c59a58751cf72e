"""A cross-built fieldlink (arm64 or armhf, for a Raspberry Pi) end to end under qemu-user: the
foreign fieldlinkd polls a sim-driver device and a Modbus TCP device served by the foreign
`fieldlink simulate`, and publishes OneNET thing-model properties to a broker on loopback that
enforces OneNET's rules (token, clean session, no will, own topics, rate); the foreign
`fieldlink status --values` reads what it wrote; SIGTERM stops it cleanly.

Run by the cross build trees' ctest (FIELDLINK_RUN_UNDER=qemu-<arch>-static, the binaries of that
tree, the OneNET emulator of the native tree); skipped where no emulator command is set."""
import json
import os
import struct
import subprocess
import unittest

from harness import BIN, RUN_UNDER, Broker, Daemon, Procs, Simulator, free_port, wait_for

PID, KEY = "PiGateway", "rs2FaE5BuygJZkWKDA5okKt1RFpwOx53hbu6hwyCS4U="
ELF_MACHINES = {0x3E: "x86-64", 0xB7: "aarch64", 0x28: "arm"}


def elf_machine(path):
    with open(path, "rb") as f:
        head = f.read(20)
    assert head[:4] == b"\x7fELF", path + " is not an ELF file"
    return ELF_MACHINES.get(struct.unpack_from("<H", head, 18)[0], "other")


def properties(broker, device):
    """Every (point, value) the platform accepted from a device: property/post carries one value
    per point, history/post (several polls within the rate's second) a list per point."""
    out = []
    for _, topic, payload in broker.received():
        params = json.loads(payload).get("params")
        if topic == "$sys/%s/%s/thing/property/post" % (PID, device):
            out += [(name, p["value"]) for name, p in params.items()]
        elif topic == "$sys/%s/%s/thing/history/post" % (PID, device):
            out += [(name, s["value"]) for e in params for name, l in e["properties"].items() for s in l]
    return out


@unittest.skipUnless(RUN_UNDER, "FIELDLINK_RUN_UNDER is not set: no cross-built binaries to run")
class CrossTest(unittest.TestCase):
    def test_the_foreign_gateway_polls_publishes_and_reports(self):
        arch = elf_machine(os.path.join(BIN, "fieldlinkd"))
        self.assertNotEqual(arch, elf_machine("/bin/sh"), "the binaries under test are cross-built")
        procs = Procs(self)
        broker = Broker(procs, devices=[(PID, "pi-sim", KEY), (PID, "pi-meter", KEY)], rate=1)
        modbus_port = free_port()
        sim = Simulator(procs, tcp_port=modbus_port, units=(1,))
        sim.cmd("set 1 holding 10 2150")
        daemon = Daemon(procs, f"""
clouds:
  onenet: {{ platform: onenet, protocol: thing-model, host: 127.0.0.1, port: {broker.port}, product_id: {PID} }}
buses:
  sim: {{ driver: sim }}
  plc: {{ driver: modbus-tcp, host: 127.0.0.1, port: {modbus_port}, timeout: 1s }}
devices:
  - name: pi-sim
    cloud: onenet
    bus: sim
    key: {KEY}
    interval: 500ms
    points:
      - {{ name: wave, area: holding, address: 0, type: int16 }}
  - name: pi-meter
    cloud: onenet
    bus: plc
    unit: 1
    key: {KEY}
    interval: 500ms
    points:
      - {{ name: temp, area: holding, address: 10, type: uint16, scale: 0.01 }}
""")
        wait_for(lambda: properties(broker, "pi-sim") and properties(broker, "pi-meter"), timeout=90,
                 what="properties from both devices (%s under %s)" % (arch, " ".join(RUN_UNDER)))
        self.assertIn(("temp", 21.5), properties(broker, "pi-meter"))
        self.assertTrue(all(isinstance(v, int) for n, v in properties(broker, "pi-sim") if n == "wave"))
        wait_for(lambda: os.path.exists(os.path.join(daemon.data_dir, "status.json")), timeout=30, what="status.json")

        def status():
            p = subprocess.run(RUN_UNDER + [os.path.join(BIN, "fieldlink"), "status", "--data-dir", daemon.data_dir,
                                            "--values"], capture_output=True, text=True, timeout=60)
            return p.returncode, p.stdout + p.stderr

        wait_for(lambda: "21.5" in status()[1], timeout=30, what="pi-meter's value in fieldlink status --values")
        rc, out = status()
        self.assertEqual(rc, 0, out)
        self.assertIn("pi-sim", out)
        self.assertIn("temp", out)
        rc, _ = daemon.stop()
        self.assertEqual(rc, 0, daemon.log())
        self.assertEqual(broker.violation_lines(), [])


if __name__ == "__main__":
    unittest.main()
