"""TLS to the broker: the server certificate is always verified against the configured CA."""
import subprocess
import unittest

from harness import Daemon, Procs, Subscriber, free_port, wait_for, Broker


def make_ca(procs, name):
    key, crt = procs.path(name + ".key"), procs.path(name + ".crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
                    "-days", "2", "-subj", "/CN=" + name], check=True, capture_output=True)
    return key, crt


def make_server_cert(procs, ca_key, ca_crt):
    key, csr, crt = procs.path("server.key"), procs.path("server.csr"), procs.path("server.crt")
    ext = procs.write("san.ext", "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
                    "-subj", "/CN=localhost"], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
                    "-out", crt, "-days", "2", "-extfile", ext], check=True, capture_output=True)
    return key, crt


def config(tls_port, ca_file):
    return f"""
clouds:
  secure:
    platform: mqtt
    host: 127.0.0.1
    port: {tls_port}
    tls: {{ ca_file: {ca_file} }}
buses:
  s: {{ driver: sim }}
devices:
  - name: boiler
    cloud: secure
    bus: s
    interval: 200ms
    points: [ {{ name: t, area: holding, address: 0 }} ]
"""


class TlsTest(unittest.TestCase):
    def test_trusted_and_untrusted_ca(self):
        procs = Procs(self)
        ca_key, ca_crt = make_ca(procs, "ca")
        key, crt = make_server_cert(procs, ca_key, ca_crt)
        _, other_ca = make_ca(procs, "other")
        tls_port = free_port()
        broker = Broker(procs, extra=["listener %d 127.0.0.1" % tls_port, "cafile " + ca_crt,
                                      "certfile " + crt, "keyfile " + key])
        sub = Subscriber(procs, broker, ["fieldlink/#"])

        good = Daemon(procs, config(tls_port, ca_crt), name="good.log")
        wait_for(lambda: len(sub.messages()) >= 3, timeout=20, what="data over TLS")
        self.assertEqual(good.stop()[0], 0)

        bad = Daemon(procs, config(tls_port, other_ca), name="bad.log")
        wait_for(lambda: "TLS handshake or certificate verification failed" in bad.log(), timeout=20,
                 what="the untrusted certificate to be refused")
        n = len(sub.messages())
        self.assertEqual(bad.stop()[0], 0)
        self.assertEqual(len(sub.messages()), n, "nothing may be published over an unverified connection")
        self.assertNotIn("connected to cloud", bad.log())


if __name__ == "__main__":
    unittest.main()
