"""A serial line between two ptys that has a speed, for the scan tests and bench.

A socat pty pair passes bytes whatever baud rate each end set, so a master could not tell a
right setting from a wrong one. This wire holds two ptys and, for every chunk one end writes,
reads both ends' speeds (a pty master sees its slave's termios): when they agree, the chunk
reaches the other end as on a line, a millisecond's worth of characters (10 bits each) at a time; when
they differ, the
other end receives noise instead, as a UART at another speed does. (Linux ptys keep no parity
bits, so parity is not checked here.) Every byte the A end sends is appended to LOG, so a test
can check what a master sent.

Usage: wire.py A_LINK B_LINK LOG   (prints "ready" once both links exist)
"""
import os
import random
import select
import sys
import termios
import time

SPEEDS = {getattr(termios, "B%d" % b): b for b in
          (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400)}


def speed(master):
    return SPEEDS.get(termios.tcgetattr(master)[4], 0)


def main():
    a_link, b_link, log_path = sys.argv[1:4]
    ends = []
    for link in (a_link, b_link):
        master, slave = os.openpty()
        attrs = termios.tcgetattr(slave)
        attrs[0] = attrs[1] = attrs[3] = 0  # raw: no translation, no echo
        attrs[6][termios.VMIN], attrs[6][termios.VTIME] = 1, 0
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(os.ttyname(slave), link)
        ends.append((master, slave))  # the slave stays open here: a master never reads EIO
    (a, _), (b, _) = ends
    noise = random.Random(7)
    with open(log_path, "ab", buffering=0) as log:
        print("ready", flush=True)
        while True:
            ready, _, _ = select.select([a, b], [], [])
            for src in ready:
                dst = b if src == a else a
                data = os.read(src, 4096)
                if src == a:
                    log.write(data)
                sent, heard = speed(src), speed(dst)
                if sent == heard and sent:
                    piece = max(1, sent // 10000)  # the characters of a millisecond
                    for i in range(0, len(data), piece):
                        time.sleep(len(data[i:i + piece]) * 10 / sent)
                        os.write(dst, data[i:i + piece])
                else:  # a receiver at another speed makes noise of what it hears
                    n = max(1, len(data) * heard // sent) if sent and heard else len(data)
                    time.sleep(len(data) * 10 / (sent or 9600))
                    os.write(dst, bytes(noise.randrange(256) for _ in range(n)))


if __name__ == "__main__":
    main()
