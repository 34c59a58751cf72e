"""`fieldlink import`: a site migrates from the ThingsBoard IoT Gateway's Modbus connector (JSON)
or an EMQX Neuron tag export (CSV) in one command. Files are made here, each with broken rows:
the good rows become a configuration that `fieldlinkd --check` accepts, every broken one is
named by its position, and an imported ThingsBoard configuration polls the bundled simulator and
publishes what its registers hold."""
import json
import os
import unittest

from harness import BIN, PLUGINS, Broker, Daemon, Procs, Simulator, Subscriber, free_port, run_cli, wait_for

FIELDLINK = os.path.join(BIN, "fieldlink")
FIELDLINKD = os.path.join(BIN, "fieldlinkd")


def read(path):
    with open(path) as f:
        return f.read()


class ImportTest(unittest.TestCase):
    def setUp(self):
        self.procs = Procs(self)

    def check(self, path):
        return run_cli([FIELDLINKD, "--check", "--plan", "--config", path, "--plugin-dir", PLUGINS])

    def test_thingsboard_connector_is_imported_and_polls_the_simulator(self):
        port = free_port()
        connector = {"master": {"slaves": [{
            "host": "127.0.0.1", "port": port, "type": "tcp", "method": "socket", "unitId": 3,
            "deviceName": "Boiler 3", "pollPeriod": 300, "byteOrder": "BIG", "wordOrder": "BIG",
            "timeseries": [
                {"tag": "r5", "type": "16uint", "functionCode": 3, "objectsCount": 1, "address": 5},
                {"tag": "r9_scaled", "type": "16int", "functionCode": 4, "objectsCount": 1, "address": 9,
                 "multiplier": 1, "divider": 10},
                {"tag": "tiny", "type": "8int", "functionCode": 3, "objectsCount": 1, "address": 7},
                {"tag": "c6", "type": "bits", "functionCode": 1, "objectsCount": 1, "address": 6},
                {"tag": "nowhere", "type": "16int", "functionCode": 3, "objectsCount": 1, "address": 70000}],
            "attributes": [{"tag": "model", "type": "string", "functionCode": 3, "objectsCount": 2, "address": 20}],
            "rpc": [{"tag": "setR5", "type": "16uint", "functionCode": 6, "objectsCount": 1, "address": 5}]},
            {"type": "udp", "host": "127.0.0.1", "port": 5020, "unitId": 1, "deviceName": "udp one",
             "timeseries": [{"tag": "x", "type": "16int", "functionCode": 3, "address": 0}]}]}}
        src = self.procs.write("tb.json", json.dumps(connector, indent=2))
        out = self.procs.path("tb.yaml")
        rc, _, err = run_cli([FIELDLINK, "import", "--from", "thingsboard", src, "-o", out])
        self.assertEqual(rc, 2, err)  # something was refused; the rest is written
        self.assertIn("master.slaves[0].timeseries[2]: type '8int' has no fieldlink equivalent", err)
        self.assertIn("master.slaves[0].timeseries[4]: address is not 0..65535", err)
        self.assertIn("master.slaves[1]: connection type 'udp' is not supported", err)
        self.assertIn("1 device(s), 4 point(s) imported; 3 refused", err)
        rc, plan, err = self.check(out)
        self.assertEqual(rc, 0, err)
        self.assertIn("device Boiler_3 (bus tcp-127.0.0.1-%d, unit 3, every 300ms)" % port, plan)
        text = read(out)
        self.assertIn("{ name: \"r5\", area: holding, address: 5, type: uint16, writable: true }", text)
        self.assertIn("report: attribute", text)

        # The draft runs as it is, once its cloud is set: the simulator's registers hold
        # unit * 100 + address, coils 1 where address % 3 == 0.
        broker = Broker(self.procs)
        sub = Subscriber(self.procs, broker, ["fieldlink/#"])
        Simulator(self.procs, tcp_port=port, units=(3,))
        cloud = ("  cloud:\n    platform: mqtt\n    host: 127.0.0.1\n    port: %d\n    topic: \"fieldlink/{device}\"\n"
                 "    payload: '{\"values\":{values}}'\n" % broker.port)
        Daemon(self.procs, text.replace("  cloud: { platform: mqtt, host: 127.0.0.1 }\n", cloud))
        wait_for(lambda: sub.json_messages("fieldlink/Boiler_3"), timeout=20, what="the imported device's data")
        values = sub.json_messages("fieldlink/Boiler_3")[-1][1]["values"]
        self.assertEqual(values["r5"], 305)
        self.assertAlmostEqual(values["r9_scaled"], 30.9)
        self.assertEqual(values["c6"], True)

    def test_neuron_tag_export_is_imported_with_broken_rows_named(self):
        src = self.procs.write("tags.csv", "\n".join([
            "name,address,attribute,type,description,decimal,precision,bias,group,driver",
            "temp,1!400001,Read,INT16,boiler,0.1,1,,g1,plc1",
            "flow,1!300003#LB,Read,FLOAT,,,2,,g1,plc1",
            "pump,1!000005,Read Write,BIT,,,,,g1,plc1",
            "alarm,1!400010.3,Read,BIT,,,,,g1,plc1",
            "label,1!400020.10,Read,STRING,,,,,g2,plc1",
            "setpoint,2!400002,Read Write,UINT16,,,,-5,g1,plc1",
            "bad_area,1!500001,Read,INT16,,,,,g1,plc1",
            "bad_type,1!400001,Read,CHAR,,,,,g1,plc1",
            "temp,1!400005,Read,INT16,,,,,g1,plc1",
            "ro,1!300001,Write,INT16,,,,,g1,plc1",
            "\"unclosed,1!400001,Read,INT16,,,,,g1,plc1"]) + "\n")
        out = self.procs.path("tags.yaml")
        rc, _, err = run_cli([FIELDLINK, "import", "--from", "neuron", src, "-o", out])
        self.assertEqual(rc, 2, err)
        self.assertIn("tags.csv:13:1: not a valid CSV file", err)  # nothing after a broken quote is guessed
        src = self.procs.write("tags.csv", read(src).replace('"unclosed', "unclosed"))
        rc, _, err = run_cli([FIELDLINK, "import", "--from", "neuron", src, "-o", out])
        self.assertEqual(rc, 2, err)
        self.assertIn("tags.csv:8:1: address '1!500001' is not SLAVE!AREA+NUMBER", err)
        self.assertIn("tags.csv:9:1: type 'CHAR' is not a Neuron Modbus type", err)
        self.assertIn("tags.csv:10:1: tag 'temp' is named twice for this device", err)
        self.assertIn("tags.csv:11:1: a writable tag in a read-only area (input)", err)
        self.assertIn("2 device(s), 7 point(s) imported; 4 refused", err)
        rc, plan, err = self.check(out)
        self.assertEqual(rc, 0, err)
        text = read(out)
        self.assertIn("{ name: \"temp\", area: holding, address: 0, type: int16, scale: 0.1 }", text)
        self.assertIn("{ name: \"flow\", area: input, address: 2, type: float32, order: cdab }", text)
        self.assertIn("{ name: \"alarm\", area: holding, address: 9, type: bool, bit: 3 }", text)
        self.assertIn("{ name: \"label\", area: holding, address: 19, type: string, length: 5 }", text)
        self.assertIn("{ name: \"setpoint\", area: holding, address: 1, type: uint16, offset: -5, writable: true }",
                      text)
        self.assertIn("device plc1-2 (bus plc1, unit 2", plan)

    def test_a_field_of_the_wrong_type_or_range_is_refused_with_its_path(self):
        connector = {"master": {"slaves": [
            {"type": "tcp", "unitId": 1, "deviceName": "ok", "timeseries": [
                {"tag": "a", "type": "16int", "functionCode": 3, "address": "7"},
                {"tag": "b", "type": "16int", "functionCode": 3, "address": 1e99},
                {"tag": "c", "type": 16, "functionCode": 3, "address": 2},
                {"tag": "d", "type": "16int", "functionCode": 3, "address": 3, "divider": "ten"},
                {"tag": "e", "type": "16int", "functionCode": 3, "address": 4}]},
            {"type": "tcp", "unitId": "one", "deviceName": "bad", "timeseries": []},
            {"type": "tcp", "port": 99999999999999999999, "deviceName": "worse"}]}}
        src = self.procs.write("types.json", json.dumps(connector))
        rc, out, err = run_cli([FIELDLINK, "import", "--from", "thingsboard", src])
        self.assertEqual(rc, 2, err)
        self.assertIn("master.slaves[0].timeseries[0]: address is not 0..65535", err)
        self.assertIn("master.slaves[0].timeseries[1]: address is not 0..65535", err)
        self.assertIn("master.slaves[0].timeseries[2]: type is not text", err)
        self.assertIn("master.slaves[0].timeseries[3]: divider is not a number", err)
        self.assertIn("master.slaves[1]: unitId is not 0..255", err)
        self.assertIn("master.slaves[2]: port is not 1..65535", err)
        self.assertIn("1 device(s), 1 point(s) imported; 6 refused", err)
        self.assertIn("{ name: \"e\", area: holding, address: 4, type: int16 }", out)

    def test_a_file_that_is_neither_is_refused(self):
        src = self.procs.write("x.json", "{\"slaves\": [}")
        rc, _, err = run_cli([FIELDLINK, "import", "--from", "thingsboard", src])
        self.assertEqual(rc, 2)
        self.assertIn("x.json:1:13: not valid JSON", err)
        src = self.procs.write("y.json", "{\"other\": 1}")
        rc, _, err = run_cli([FIELDLINK, "import", "--from", "thingsboard", src])
        self.assertIn("expected a Modbus connector configuration (master.slaves, or server.devices)", err)
        rc, _, err = run_cli([FIELDLINK, "import", "--from", "neuron", self.procs.path("missing.csv")])
        self.assertEqual(rc, 2)


if __name__ == "__main__":
    unittest.main()
