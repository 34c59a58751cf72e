"""Name resolution never stalls the event loop: a DNS server on loopback (dnspython) answers one
cloud's name at once, another's only after 4 s, and says a third does not exist. Sessions of the
fast name publish on time while the slow answer is pending; each name is asked once however
many sessions wait for it, and kept for its TTL; the missing name is logged once with the
resolver's answer and retried with backoff."""
import socket
import threading
import time
import unittest

import dns.message
import dns.rcode
import dns.rrset

from harness import Broker, Daemon, Procs, Subscriber, wait_for

SLOW_S = 4.0


class FakeDns:
    """UDP DNS on 127.0.0.1: A records for known names (slow ones answered late), NXDOMAIN else."""

    def __init__(self, answers, slow):
        self.answers, self.slow = answers, slow
        self.queries = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            threading.Thread(target=self.answer, args=(data, peer), daemon=True).start()

    def answer(self, data, peer):
        q = dns.message.from_wire(data)
        name = q.question[0].name.to_text().rstrip(".")
        rdtype = q.question[0].rdtype
        with self.lock:
            self.queries.setdefault(name, []).append((time.time(), dns.rdatatype.to_text(rdtype)))
        r = dns.message.make_response(q)
        if name in self.answers:
            if name in self.slow:
                time.sleep(SLOW_S)
            if rdtype == dns.rdatatype.A:
                r.answer.append(dns.rrset.from_text(name + ".", 30, "IN", "A", self.answers[name]))
        else:
            r.set_rcode(dns.rcode.NXDOMAIN)
        try:
            self.sock.sendto(r.to_wire(), peer)
        except OSError:
            pass

    def count(self, name, rdtype="A"):
        with self.lock:
            return sum(1 for _, t in self.queries.get(name, []) if t == rdtype)

    def close(self):
        self.sock.close()


def config(dns_port, broker_port):
    devices = "".join("  - { name: %s%d, cloud: %s, bus: s, interval: 200ms, points: [ { name: v, area: holding, address: 0 } ] }\n"
                      % (cloud, i, cloud) for cloud in ("fast", "slow", "gone") for i in range(5 if cloud != "gone" else 2))
    clouds = "".join("  %s: { platform: mqtt, host: %s, port: %d, topic: \"dns/{device}\" }\n" % (c, h, broker_port)
                     for c, h in (("fast", "broker.test"), ("slow", "slow.test"), ("gone", "nowhere.test")))
    return """
gateway: { dns_servers: [ "127.0.0.1:%d" ], dns_timeout: 10s }
clouds:
%sbuses:
  s: { driver: sim }
devices:
%s""" % (dns_port, clouds, devices)


class ResolverTest(unittest.TestCase):
    def test_a_slow_name_delays_only_its_own_sessions(self):
        procs = Procs(self)
        dns_server = FakeDns({"broker.test": "127.0.0.1", "slow.test": "127.0.0.1"}, slow={"slow.test"})
        self.addCleanup(dns_server.close)
        broker = Broker(procs)
        sub = Subscriber(procs, broker, ["dns/#"])
        t0 = time.time()
        daemon = Daemon(procs, config(dns_server.port, broker.port))
        wait_for(lambda: {t for _, t, _ in sub.messages()} >= {"dns/slow%d" % i for i in range(5)}, timeout=30,
                 what="the slow name's sessions to publish once it resolved")
        # The missing name is asked again once its negative answer (kept 5 s) expired and a
        # session's backoff comes round.
        wait_for(lambda: dns_server.count("nowhere.test") >= 2, timeout=60, what="the missing name to be asked again")
        self.assertEqual(daemon.stop()[0], 0)

        arrivals = {}
        for at, topic, _ in sub.messages():
            arrivals.setdefault(topic.split("/")[1], []).append(at)
        for i in range(5):
            fast = arrivals["fast%d" % i]
            self.assertLess(fast[0] - t0, SLOW_S - 1, "fast sessions publish before the slow answer")
            during = [t for t in fast if t < t0 + SLOW_S]
            self.assertGreater(len(during), 5, "and keep publishing while it is pending")
            self.assertLess(max(b - a for a, b in zip(during, during[1:])), 1.0, "on time: no stall of the loop")
            self.assertGreater(arrivals["slow%d" % i][0] - t0, SLOW_S - 0.5)
        # One query per name for all five sessions; the answer is kept for its TTL (30 s).
        self.assertEqual(dns_server.count("broker.test"), 1)
        self.assertEqual(dns_server.count("slow.test"), 1)
        # The missing name: retried with backoff, logged once with the resolver's answer.
        elapsed = time.time() - t0
        self.assertLessEqual(dns_server.count("nowhere.test"), 2 + elapsed / 5, "at most one query per negative TTL")
        log = daemon.log()
        self.assertEqual(log.count("cannot resolve host nowhere.test"), 1, log)
        self.assertIn("cannot resolve host nowhere.test: Domain name not found", log)
        self.assertNotIn("dns/gone", {t for _, t, _ in sub.messages()})


if __name__ == "__main__":
    unittest.main()
