"""Sparkplug B payloads of the gateway's encoder, decoded by Eclipse Tahu's sparkplug-payload
(npm), a decoder nobody on the project wrote: every basic datatype at its limits, aliases, seq,
timestamps, historical and null metrics, a death certificate without seq.

The test command installs node (Debian's, when the machine has none) and the npm package into
/var/cache/fieldlink-test (scripts/deps.sh --test); NODE_PATH may point elsewhere.
"""
import json
import os
import shutil
import subprocess
import unittest

BUILD = os.environ.get("FIELDLINK_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
HERE = os.path.dirname(os.path.abspath(__file__))
NODE_PATH = os.environ.get("NODE_PATH", "/var/cache/fieldlink-test/node_modules")


class TahuOracle(unittest.TestCase):
    def decode(self, hex_lines):
        node = shutil.which("node") or shutil.which("nodejs")
        self.assertIsNotNone(node, "node is not installed (scripts/deps.sh --test installs it)")
        self.assertTrue(os.path.isdir(os.path.join(NODE_PATH, "sparkplug-payload")),
                        "sparkplug-payload is not installed in %s (scripts/deps.sh --test installs it)" % NODE_PATH)
        out = subprocess.run([node, os.path.join(HERE, "..", "sparkplug", "tahu_decode.js")],
                             input="\n".join(hex_lines) + "\n", capture_output=True, text=True, timeout=60,
                             env=dict(os.environ, NODE_PATH=NODE_PATH))
        self.assertEqual(out.returncode, 0, out.stderr)
        return [json.loads(line) for line in out.stdout.splitlines()]

    def test_payloads_read_back_as_written(self):
        vectors = subprocess.run([os.path.join(BUILD, "tests", "sparkplug", "sparkplug_vectors")],
                                 capture_output=True, text=True, check=True).stdout.splitlines()
        self.assertEqual(len(vectors), 3)
        pairs = [line.split("\t") for line in vectors]
        decoded = self.decode([hex_ for hex_, _ in pairs])
        self.assertEqual(len(decoded), len(pairs))
        checked = 0
        for (_, want_text), got in zip(pairs, decoded):
            want = json.loads(want_text)
            self.assertEqual(got["seq"], want["seq"])
            self.assertEqual(got["timestamp"], want["timestamp"])
            self.assertEqual(len(got["metrics"]), len(want["metrics"]))
            for w, g in zip(want["metrics"], got["metrics"]):
                with self.subTest(metric=w["name"] or w["alias"], type=w["type"]):
                    self.assertEqual(g["name"], w["name"])
                    self.assertEqual(g["alias"], w["alias"])
                    self.assertEqual(g["type"], w["type"])
                    self.assertEqual(g["historical"], w["historical"])
                    self.assertEqual(g["ts"], w["ts"])
                    if w["type"] == "UInt32":
                        # The specification's table puts UInt32 in int_value (protobuf uint32);
                        # Tahu's JavaScript 1.0.3 writes and reads it in long_value only (and so
                        # reads no value here). The field is checked, not Tahu's reading of it.
                        self.assertEqual(g["field"], "intValue")
                        continue
                    self.assertEqual(g["null"], w["null"])
                    if w["null"]:
                        self.assertEqual(g["field"], "")  # no value field at all
                    elif w["type"] == "Float":
                        self.assertAlmostEqual(float(g["value"]), float(w["value"]), places=6)
                    elif not w["null"]:
                        self.assertEqual(g["value"], w["value"])
                    checked += 1
        self.assertEqual(checked, 15)  # every metric but the UInt32 one


if __name__ == "__main__":
    unittest.main()
