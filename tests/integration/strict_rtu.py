"""A strict Modbus RTU server on a pty for the line-timing test: it treats bytes that arrive less
than 3.5 characters after the line was last busy (its own answer, or the previous frame) as the
continuation of that frame, as a real device's receiver does, so such a request is lost
(counted as a violation, not answered). Units 1 and 2 answer FC 3 with register = unit * 100 +
address; with --stray N, every Nth answer is preceded by a well-formed answer from unit 7, as if
another unit or master were on the line.

Usage: strict_rtu.py DEVICE BAUD STATUS_FILE [--stray N]
The status file holds "requests R answered A violations V" after every frame.
"""
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
    dev, baud, status = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    stray = int(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[4] == "--stray" else 0
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
            f.write("requests %d answered %d violations %d\n" % (requests, answered, violations))
        os.replace(status + ".tmp", status)

    report()
    while True:
        r, _, _ = select.select([fd], [], [], 0.5)
        if not r:
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
        os.write(fd, out)
        busy_until = time.monotonic()
        answered += 1
        report()


if __name__ == "__main__":
    main()
