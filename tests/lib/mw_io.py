#!/usr/bin/env python3
"""mw_io.py - the two sides of a live-migration disk hand-over (tests/cluster_mw.sh).

    mw_io.py writer FILE DIR N STRIDE   (runs on the source host)
    mw_io.py reader FILE DIR N STRIDE   (runs on the destination host)

Both open FILE O_RDWR|O_DIRECT once and keep it open throughout.  Phase 1: the
writer fills holes with pattern blocks at rising offsets (i * STRIDE) and after
each write returns appends i to DIR/progress; the reader meanwhile reads blocks
whose number it has seen in DIR/progress -- written completely before its read
began -- and must never find anything but their pattern (zeros would mean a
stale map).  Phase 2 (the hand-over): the writer stops; the reader writes N/4
new blocks past the writer's region, then DIR/b_done; the writer, its
descriptor still open, reads them back.  Each side prints one summary line;
exit status 0 only if every check held.
"""
import mmap
import os
import random
import struct
import sys
import time

BS = 4096


def pattern(off, tag):
    return struct.pack('<QQ', off, tag) * (BS // 16)


def wait_for(path, secs):
    end = time.monotonic() + secs
    while not os.path.exists(path):
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def completed(d):
    try:
        with open(os.path.join(d, 'progress'), 'rb') as f:
            lines = f.read().split(b'\n')
    except FileNotFoundError:
        return 0
    # the last line may be partial: count the whole ones
    return len(lines) - 1


def main():
    role, path, d, n, stride = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    buf = mmap.mmap(-1, BS)
    fd = os.open(path, os.O_RDWR | os.O_DIRECT)
    bad = 0
    if role == 'writer':
        prog = os.open(os.path.join(d, 'progress'), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        open(os.path.join(d, 'a_open'), 'w').close()
        wait_for(os.path.join(d, 'b_open'), 60)
        # the test looks at the lock while both hold the file open, then
        # says go (the fills can take less time than any fixed sleep)
        wait_for(os.path.join(d, 'go'), 60)
        t0 = time.monotonic()
        for i in range(n):
            off = i * stride
            buf[:] = pattern(off, 0xA)
            if os.pwritev(fd, [buf], off) != BS:
                print('writer: short write at', off)
                return 1
            os.write(prog, b'%d\n' % i)
        dt = time.monotonic() - t0
        open(os.path.join(d, 'a_done'), 'w').close()
        # phase 2: read what the destination writes, through the same fd
        if not wait_for(os.path.join(d, 'b_done'), 120):
            print('writer: the reader never finished its writes')
            return 1
        m = n // 4
        for j in range(m):
            off = n * stride + j * stride
            if os.preadv(fd, [buf], off) != BS or bytes(buf) != pattern(off, 0xB):
                bad += 1
        print('writer: %d hole fills in %.1f s; read back %d blocks the other host wrote: %d wrong'
              % (n, dt, m, bad))
    else:
        open(os.path.join(d, 'b_open'), 'w').close()
        wait_for(os.path.join(d, 'a_open'), 60)
        reads = zeros = 0
        rnd = random.Random(7)
        while True:
            done = os.path.exists(os.path.join(d, 'a_done'))
            k = completed(d)
            if k == 0:
                if done:
                    break
                time.sleep(0.002)
                continue
            # the newest completed block, and now and then an older one
            i = k - 1 if rnd.random() < 0.7 else rnd.randrange(k)
            off = i * stride
            if os.preadv(fd, [buf], off) != BS:
                bad += 1
            elif bytes(buf) != pattern(off, 0xA):
                bad += 1
                if bytes(buf) == bytes(BS):
                    zeros += 1
            reads += 1
            if done and k >= n:
                break
        # everything, once the writer stopped
        for i in range(n):
            off = i * stride
            if os.preadv(fd, [buf], off) != BS or bytes(buf) != pattern(off, 0xA):
                bad += 1
        # phase 2: this host writes now
        m = n // 4
        for j in range(m):
            off = n * stride + j * stride
            buf[:] = pattern(off, 0xB)
            if os.pwritev(fd, [buf], off) != BS:
                bad += 1
        open(os.path.join(d, 'b_done'), 'w').close()
        print('reader: %d reads of completed blocks during the fills, %d wrong (%d zeros); '
              'wrote %d blocks after the hand-over' % (reads, bad, zeros, m))
    os.close(fd)
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
