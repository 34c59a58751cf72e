"""The profile library (profiles/*.csv): every shipped register map is accepted by --check, found
by name from a template's points_file, and polled end to end: `fieldlink simulate --config` puts
a plausible value in every point, the gateway reads them over Modbus TCP and publishes them, and
this test computes what each point must read from the CSV itself (the simulator's documented
rule), independently of the gateway's decoder."""
import csv
import os
import unittest

from harness import BIN, PLUGINS, Broker, Daemon, Procs, Simulator, Subscriber, free_port, run_cli, wait_for

PROFILES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "profiles")


def rows(profile):
    with open(os.path.join(PROFILES, profile)) as f:
        lines = [line for line in f if line.strip() and not line.lstrip().startswith("#")]
    return list(csv.DictReader(lines))


def expected(row, i):
    """What `simulate --config` holds in point `i` (docs/fieldlink.md), as the gateway decodes it."""
    kind = row.get("type") or "uint16"
    if kind == "string":
        return row["name"][:2 * int(row["length"])]
    if row.get("min") and row.get("max"):
        mid = (float(row["min"]) + float(row["max"])) / 2
        return mid if kind.startswith("float") else round(mid)
    if kind.startswith("float"):
        return 20.0 + 1.5 * i
    scale = float(row.get("scale") or 1)
    offset = float(row.get("offset") or 0)
    return (100 + i) * scale + offset


class ProfilesTest(unittest.TestCase):
    def test_every_profile_is_polled_against_the_simulator(self):
        profiles = sorted(p for p in os.listdir(PROFILES) if p.endswith(".csv"))
        self.assertGreaterEqual(len(profiles), 5, profiles)
        procs = Procs(self)
        broker = Broker(procs)
        sub = Subscriber(procs, broker, ["fieldlink/#"])
        port = free_port()
        templates = "".join("  %s: { points_file: %s }\n" % (p[:-4], p) for p in profiles)
        devices = "".join("  - { name: dev%d, template: %s, cloud: local, bus: tcp1, unit: %d, interval: 500ms }\n"
                          % (u, p[:-4], u) for u, p in enumerate(profiles, start=1))
        text = (f"clouds:\n  local:\n    platform: mqtt\n    host: 127.0.0.1\n    port: {broker.port}\n"
                f"    topic: \"fieldlink/{{device}}\"\n    payload: '{{\"values\":{{values}}}}'\n"
                f"buses:\n  tcp1: {{ driver: modbus-tcp, host: 127.0.0.1, port: {port}, timeout: 500ms }}\n"
                f"templates:\n{templates}devices:\n{devices}")
        path = procs.write("profiles.yaml", text)
        rc, out, err = run_cli([os.path.join(BIN, "fieldlinkd"), "--check", "--plan", "--config", path,
                                "--plugin-dir", PLUGINS])
        self.assertEqual(rc, 0, err)
        Simulator(procs, tcp_port=port, config=path)
        Daemon(procs, text)
        names = ["dev%d" % u for u in range(1, len(profiles) + 1)]
        wait_for(lambda: all(sub.json_messages("fieldlink/" + n) for n in names), timeout=30,
                 what="a publication from every profile's device")
        for u, profile in enumerate(profiles, start=1):
            got = sub.json_messages("fieldlink/dev%d" % u)[-1][1]["values"]
            table = rows(profile)
            self.assertEqual(sorted(got), sorted(r["name"] for r in table), profile)
            for i, row in enumerate(table):
                want = expected(row, i)
                with self.subTest(profile=profile, point=row["name"]):
                    if isinstance(want, str):
                        self.assertEqual(got[row["name"]], want)
                    else:
                        self.assertAlmostEqual(got[row["name"]], want, delta=abs(want) * 1e-6 + 1e-9)


if __name__ == "__main__":
    unittest.main()
