#!/usr/bin/env python3
# mkcorpus.py IMAGE FRESH-IMAGE OUTDIR - cut a populated datastore image (and
# a freshly formatted one) into seed inputs for each fuzz target, in the input
# formats documented at the top of tests/fuzz/fuzz_*.c: a flags byte (bit 0:
# reseal crcs, bit 1: fix a journal commit's data crc), for some targets a
# selector byte, then whole 4 KiB blocks.  Called by mkcorpus.sh.
import hashlib
import os
import struct
import sys

BLK = 4096
MAGIC = 0x53464356
T_SUPER, T_LOCK, T_HB, T_JHDR, T_JDESC, T_JCOMMIT, T_CBMP, T_INODE, T_IND, T_DIRB = range(1, 11)


def blocks(path):
    data = open(path, 'rb').read()
    return [data[i:i + BLK] for i in range(0, len(data), BLK)]


def btype(b):
    magic, t = struct.unpack_from('<IH', b, 0)
    return t if magic == MAGIC else 0


def put(out, target, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


def cut(img, out, tag):
    bl = blocks(img)
    of = {}
    for i, b in enumerate(bl):
        of.setdefault(btype(b), []).append(i)
    put(out, 'super', b'\0' + bl[0])
    put(out, 'super', b'\1' + bl[-1])		# the backup header
    hb = of.get(T_HB, [])
    if hb:
        put(out, 'hb', b'\1' + b''.join(bl[i] for i in hb[:2]))
    for k, i in enumerate(of.get(T_LOCK, [])[:4]):
        put(out, 'lock', bytes([1, k]) + bl[i])
    for i in of.get(T_JHDR, [])[:1]:
        rec = bl[i:i + 12]
        while rec and not any(rec[-1]):
            rec.pop()
        put(out, 'journal', b'\3' + b''.join(rec))
    for k, i in enumerate(of.get(T_INODE, [])[:12]):
        put(out, 'inode', bytes([1, k]) + bl[i])
    inds = of.get(T_IND, [])
    if inds:
        # the indirect block, then the inode that points at it
        owner = [i for i in of.get(T_INODE, [])
                 if struct.unpack_from('<Q', bl[i], 0x900)[0] == inds[0]]
        put(out, 'bmap', b'\1' + bl[inds[0]] + (bl[owner[0]] if owner else b''))
    dirs = of.get(T_DIRB, [])
    for k in range(0, len(dirs), 2):
        put(out, 'dir', bytes([1, k]) + b''.join(bl[i] for i in dirs[k:k + 2]))
    # whole image: every metadata block (data blocks left out but for a few)
    recs = [i for i, b in enumerate(bl) if btype(b)]
    recs += [i for i, b in enumerate(bl) if not btype(b) and any(b)][:8]
    recs = sorted(recs)[:64]
    put(out, 'image', b'\0' + b''.join(struct.pack('<I', i) + bl[i] for i in recs))


def main():
    img, fresh, out = sys.argv[1:4]
    cut(img, out, 'populated')
    cut(fresh, out, 'fresh')
    # text targets: URIs and VM configurations
    for u in ['/var/tmp/ds.img', 'file:///var/tmp/ds.img', 'ds.img',
              'iscsi://alice%s3cret@san.example.com:3260/iqn.2026-11.org.vcfs:t/1',
              'iscsi://[::1]:3260/iqn.x:t/16383', 'nfs://nas:2049/srv/ds/vcfs.img?version=3',
              'rados://rbd/vcfs?conf=%2Fetc%2Fceph%2Fceph.conf&id=admin']:
        put(out, 'uri', u.encode())
    put(out, 'vmcfg', open(os.path.join(os.path.dirname(__file__), 'vm.json'), 'rb').read())


main()
