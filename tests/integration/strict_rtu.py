"""A strict Modbus RTU server on a pty for the line-timing test: it treats bytes that arrive less
than 3.5 characters after the line was last busy (its own answer, or the previous frame) as the
continuation of that frame, as a real device's receiver does, so such a request is lost
(counted as a violation, not answered). Units 1 and 2 answer FC 3 with register = unit * 100 +
address; with --stray N, every Nth answer is preceded by a well-formed answer from unit 7, as if
another unit or master were on the line; with --late UNIT:ADDRESS:EVERY:MS, every EVERYth request
to that unit and address is answered MS milliseconds late (a unit busy with something else); it
still hears what comes meanwhile and answers it after the late answer, in order, as a real unit
with a receive buffer does.

Usage: strict_rtu.py DEVICE BAUD STATUS_FILE [--stray N] [--late UNIT:ADDRESS:EVERY:MS ...]
The status file holds "requests R answered A violations V late L" after every frame.
"""
import argparse
import os
import select
import sys
import termios
import time
import tty


def crc16(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return bytes([crc & 0xFF, crc >> 8])


def request_length(buf):
    if len(buf) < 2:
        return 0
    if buf[1] in (1, 2, 3, 4, 5, 6):
        return 8
    if buf[1] in (15, 16):
        return 0 if len(buf) < 7 else 9 + buf[6]
    return -1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("device")
    ap.add_argument("baud", type=int)
    ap.add_argument("status")
    ap.add_argument("--stray", type=int, default=0)
    ap.add_argument("--late", action="append", default=[])
    args = ap.parse_args()
    dev, baud, status, stray = args.device, args.baud, args.status, args.stray
    late_rules = {}  # (unit, address) -> [every, ms, requests seen]
    for rule in args.late:
        u, a, every, ms = (int(x) for x in rule.split(":"))
        late_rules[(u, a)] = [every, ms, 0]
    late = 0
    bits = 10  # 8N1
    silence = 0.00175 if baud > 19200 else 3.5 * bits / baud
    fd = os.open(dev, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    termios.tcflush(fd, termios.TCIOFLUSH)
    buf = b""
    busy_until = 0.0  # when the line was last busy
    requests = answered = violations = 0
    lost = False  # the frame in progress began too early: it is garbage to this device

    def report():
        with open(status + ".tmp", "w") as f:
            f.write("requests %d answered %d violations %d late %d\n" % (requests, answered, violations, late))
        os.replace(status + ".tmp", status)

    outbox = []  # [due time, frame]: answers in order, the late one holding up those behind it

    report()
    while True:
        while outbox and outbox[0][0] <= time.monotonic():
            # The line is busy from the moment the answer goes (a pty carries it at once): taking
            # the time after write() would count this process being preempted as line time.
            busy_until = time.monotonic()
            os.write(fd, outbox.pop(0)[1])
        wait = max(0.0, outbox[0][0] - time.monotonic()) if outbox else 0.5
        r, _, _ = select.select([fd], [], [], wait)
        if not r:
            if not outbox:
                buf, lost = b"", False
            continue
        chunk = os.read(fd, 512)
        now = time.monotonic()
        if not buf and now - busy_until < silence * 0.9:
            lost = True  # the first byte came before the line had been quiet for 3.5 characters
        busy_until = now
        buf += chunk
        n = request_length(buf)
        if n < 0 or (n and len(buf) >= n and buf[n - 2:n] != crc16(buf[:n - 2])):
            buf, lost = b"", False  # garbage: wait for silence
            continue
        if n == 0 or len(buf) < n:
            continue
        frame, buf = buf[:n], buf[n:]
        requests += 1
        if lost:
            violations += 1
            lost = False
            report()
            continue
        unit, fc = frame[0], frame[1]
        addr, count = frame[2] << 8 | frame[3], frame[4] << 8 | frame[5]
        if unit not in (1, 2):
            report()
            continue
        if fc == 3:
            body = bytes([unit, 3, 2 * count]) + b"".join(((unit * 100 + addr + i) & 0xFFFF).to_bytes(2, "big")
                                                          for i in range(count))
        elif fc in (6, 16):
            body = frame[:6]
        else:
            body = bytes([unit, fc | 0x80, 1])
        out = body + crc16(body)
        if stray and requests % stray == 0:
            other = bytes([7, 3, 2, 0, 42])
            out = other + crc16(other) + out
        due = time.monotonic()
        rule = late_rules.get((unit, addr)) if fc == 3 else None
        if rule:
            rule[2] += 1
            if rule[2] % rule[0] == 0:
                due += rule[1] / 1000.0
                late += 1
        if outbox:
            due = max(due, outbox[-1][0])
        outbox.append([due, out])
        answered += 1
        report()


if __name__ == "__main__":
    main()
