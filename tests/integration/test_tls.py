"""TLS to the broker: the server certificate is always verified against the configured CA."""
import signal
import subprocess
import time
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


def config(tls_port, ca_file, interval="200ms"):
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
    interval: {interval}
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

    def test_reload_keeps_or_replaces_the_context(self):
        """A reload that leaves the cloud alone keeps its TLS session; a CA file that is not a
        certificate is refused and changes nothing; a CA that does not sign the broker's
        certificate, once reloaded, makes the session reconnect and be refused: verification
        stays on across reloads."""
        procs = Procs(self)
        ca_key, ca_crt = make_ca(procs, "ca")
        key, crt = make_server_cert(procs, ca_key, ca_crt)
        _, other_ca = make_ca(procs, "other")
        not_a_cert = procs.write("not-a-cert.pem", "-----BEGIN CERTIFICATE-----\nnonsense\n")
        tls_port = free_port()
        broker = Broker(procs, extra=["listener %d 127.0.0.1" % tls_port, "cafile " + ca_crt,
                                      "certfile " + crt, "keyfile " + key])
        sub = Subscriber(procs, broker, ["fieldlink/#"])
        daemon = Daemon(procs, config(tls_port, ca_crt))
        wait_for(lambda: len(sub.messages()) >= 3, timeout=20, what="data over TLS")

        def reload(text, expect):
            n = daemon.log().count(expect)
            daemon.rewrite_config(text)
            daemon.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: daemon.log().count(expect) > n, timeout=15, what=expect)

        reload(config(tls_port, ca_crt, interval="300ms"), "SIGHUP: reloaded")
        self.assertIn("SIGHUP: reloaded: 0 session(s) kept connected, 1 stopped, 1 started", daemon.log())
        reload(config(tls_port, ca_crt, interval="300ms").replace("\nbuses:", "\n  spare: { platform: mqtt, "
                                                                  "host: 127.0.0.1, port: 1 }\nbuses:"),
               "SIGHUP: reloaded")
        self.assertIn("SIGHUP: reloaded: 1 session(s) kept connected, 0 stopped, 0 started", daemon.log())
        n = len(sub.messages())
        wait_for(lambda: len(sub.messages()) >= n + 3, timeout=20, what="data over the kept TLS session")

        reload(config(tls_port, not_a_cert, interval="300ms"), "still running the previous configuration")
        n = len(sub.messages())
        wait_for(lambda: len(sub.messages()) >= n + 3, timeout=20, what="data after the refused reload")

        reload(config(tls_port, other_ca, interval="300ms"), "SIGHUP: reloaded")
        wait_for(lambda: "TLS handshake or certificate verification failed" in daemon.log(), timeout=20,
                 what="the broker's certificate refused under the new CA")
        time.sleep(0.5)
        n = len(sub.messages())
        time.sleep(1.5)
        self.assertEqual(len(sub.messages()), n, "nothing may be published over an unverified connection")
        self.assertEqual(daemon.stop()[0], 0)


if __name__ == "__main__":
    unittest.main()
