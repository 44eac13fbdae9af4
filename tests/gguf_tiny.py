"""gguf_tiny.py — a small GGUF reader/writer for the shell tests (hf-mxfp4.sh,
hf-dsv3.sh): enough for the fixture files (F32, F16, BF16, Q8_0, MXFP4)."""
import struct
def read(p):
    """(header bytes up to the tensor infos, alignment, [(name, ne, type, bytes)])"""
    b = open(p, "rb").read()
    o = 4
    def u32():
        nonlocal o; v = struct.unpack_from("<I", b, o)[0]; o += 4; return v
    def u64():
        nonlocal o; v = struct.unpack_from("<Q", b, o)[0]; o += 8; return v
    def s():
        n = u64(); nonlocal o; v = b[o:o + n]; o += n; return v.decode()
    SZ = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    def skip(t):
        nonlocal o
        if t == 8: s()
        elif t == 9:
            et = u32(); n = u64()
            for _ in range(n): skip(et)
        else: o += SZ[t]
    F = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
    def val(t):
        nonlocal o
        if t == 8: return s()
        if t == 9:
            et = u32(); n = u64(); return [val(et) for _ in range(n)]
        v = struct.unpack_from(F[t], b, o)[0]; o += struct.calcsize(F[t]); return v
    ver = u32(); nt = u64(); nkv = u64(); align = 32
    kv = {}
    for _ in range(nkv):
        k = s(); t = u32()
        kv[k] = val(t)
        if k == "general.alignment": align = kv[k]
    head = b[:o]
    infos = []
    for _ in range(nt):
        n = s(); nd = u32(); ne = [u64() for _ in range(nd)]; ty = u32(); off = u64(); infos.append((n, ne, ty, off))
    ds = o + (-o % align)
    BS = {0: (1, 4), 1: (1, 2), 30: (1, 2), 8: (32, 34), 39: (32, 17)}   # F32 F16 BF16 Q8_0 MXFP4
    out = []
    for n, ne, ty, off in infos:
        nel = 1
        for x in ne: nel *= x
        blk, bsz = BS[ty]
        out.append((n, ne, ty, b[ds + off: ds + off + nel // blk * bsz]))
    read.kv = kv   # the metadata of the last file read
    return head, align, out

def floats(data):
    return struct.unpack("<%df" % (len(data) // 4), data)

def pack(fl):
    return struct.pack("<%df" % len(fl), *fl)

def write(p, head, align, ts):
    o = bytearray(head)
    off = 0
    offs = []
    for n, ne, ty, data in ts:
        off += -off % align
        offs.append(off); off += len(data)
    for (n, ne, ty, data), of in zip(ts, offs):
        nb = n.encode()
        o += struct.pack("<Q", len(nb)) + nb + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", x) for x in ne)
        o += struct.pack("<IQ", ty, of)
    o += b"\0" * (-len(o) % align)
    base = len(o)
    for (n, ne, ty, data), of in zip(ts, offs):
        o += b"\0" * (base + of - len(o)); o += data
    open(p, "wb").write(bytes(o))

def hf_blocks(data, rows, nb):
    """ggml MXFP4 rows (17-byte blocks) -> HF blocks (rows, nb, 16) and scales (rows, nb)"""
    bl, sc = bytearray(), bytearray()
    for i in range(rows * nb):
        blk = data[17 * i: 17 * i + 17]
        sc.append(blk[0])
        el = [blk[1 + j] & 15 for j in range(16)] + [blk[1 + j] >> 4 for j in range(16)]
        bl += bytes(el[2 * k] | el[2 * k + 1] << 4 for k in range(16))
    return bl, sc
