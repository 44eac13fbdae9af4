#!/usr/bin/python3
"""gguf-edit.py IN OUT EDIT... — rewrite one GGUF file into a hostile variant
(tests/hostile.sh).  The key/value section is parsed and written back, the
tensor infos likewise, the tensor data copied unchanged (re-aligned), so one
defect is planted in an otherwise valid model.  EDITs:

  set-u32 KEY N          set (or add) KEY as a u32
  set-str KEY TEXT       set (or add) KEY as a string (TEXT: Python bytes escapes)
  del KEY                drop KEY
  arr-str KEY I TEXT     replace element I of the string array KEY (bytes escapes)
  arr-len KEY N          claim N elements for array KEY (only the count changes)
  arr-type KEY T         re-tag the array KEY's element type as T (data unchanged)
  tensor NAME FIELD V    FIELD: off (data offset), type, dim0/dim1/dim2, ndims
  n-tensors N            claim N tensors in the header
  n-kv N                 claim N key/values in the header
  version N              header version
  key-len I N            claim a length of N bytes for the name of key/value I
"""
import ast
import struct
import sys

T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 = range(13)
FIXED = {T_U8: 'B', T_I8: 'b', T_U16: 'H', T_I16: 'h', T_U32: 'I', T_I32: 'i', T_F32: 'f', T_BOOL: '?',
         T_U64: 'Q', T_I64: 'q', T_F64: 'd'}


class R:
    def __init__(self, b):
        self.b, self.o = b, 0

    def get(self, fmt):
        v = struct.unpack_from('<' + fmt, self.b, self.o)
        self.o += struct.calcsize('<' + fmt)
        return v[0]

    def str(self):
        n = self.get('Q')
        s = self.b[self.o:self.o + n]
        self.o += n
        return s

    def val(self, t):
        if t == T_STR:
            return self.str()
        if t == T_ARR:
            et, n = self.get('I'), self.get('Q')
            return [et, [self.val(et) for _ in range(n)], None]
        return self.get(FIXED[t])


def wstr(s):
    return struct.pack('<Q', len(s)) + s


def wval(t, v):
    if t == T_STR:
        return wstr(v)
    if t == T_ARR:
        et, items, claimed = v[0], v[1], v[2]
        out = struct.pack('<IQ', et, len(items) if claimed is None else claimed)
        return out + b''.join(wval(et, x) for x in items)
    return struct.pack('<' + FIXED[t], v)


def text(s):
    return ast.literal_eval('b"' + s.replace('"', '\\"') + '"')


def main():
    src, dst, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    r = R(open(src, 'rb').read())
    assert r.b[:4] == b'GGUF'
    r.o = 4
    version, n_t, n_kv = r.get('I'), r.get('Q'), r.get('Q')
    kvs = []
    for _ in range(n_kv):
        k = r.str()
        t = r.get('I')
        kvs.append([k, t, r.val(t)])
    tis = []
    for _ in range(n_t):
        name = r.str()
        nd = r.get('I')
        dims = [r.get('Q') for _ in range(nd)]
        tis.append({'name': name, 'ndims': nd, 'dims': dims, 'type': r.get('I'), 'off': r.get('Q')})
    align = 32
    for k, t, v in kvs:
        if k == b'general.alignment':
            align = v
    data_start = (r.o + align - 1) // align * align
    data = r.b[data_start:]
    hdr = {'version': version, 'n-tensors': None, 'n-kv': None}
    key_len = {}

    def find(k):
        for e in kvs:
            if e[0] == k:
                return e
        return None

    i = 0
    while i < len(args):
        op = args[i]
        if op in ('set-u32', 'set-str'):
            k, v = args[i + 1].encode(), args[i + 2]
            t, v = (T_U32, int(v)) if op == 'set-u32' else (T_STR, text(v))
            e = find(k)
            if e:
                e[1], e[2] = t, v
            else:
                kvs.append([k, t, v])
            i += 3
        elif op == 'del':
            kvs[:] = [e for e in kvs if e[0] != args[i + 1].encode()]
            i += 2
        elif op == 'arr-str':
            find(args[i + 1].encode())[2][1][int(args[i + 2])] = text(args[i + 3])
            i += 4
        elif op == 'arr-len':
            find(args[i + 1].encode())[2][2] = int(args[i + 2])
            i += 3
        elif op == 'arr-type':
            e = find(args[i + 1].encode())
            e[2] = [99, e[2][1], e[2][2], e[2][0], int(args[i + 2])]
            i += 3
        elif op == 'tensor':
            ti = next(x for x in tis if x['name'] == args[i + 1].encode())
            f, v = args[i + 2], int(args[i + 3])
            if f.startswith('dim'):
                ti['dims'][int(f[3:])] = v
            else:
                ti[f] = v
            i += 4
        elif op in hdr:
            hdr[op] = int(args[i + 1])
            i += 2
        elif op == 'key-len':
            key_len[int(args[i + 1])] = int(args[i + 2])
            i += 3
        else:
            sys.exit('gguf-edit: unknown edit ' + op)

    out = bytearray(b'GGUF')
    out += struct.pack('<IQQ', hdr['version'], len(tis) if hdr['n-tensors'] is None else hdr['n-tensors'],
                       len(kvs) if hdr['n-kv'] is None else hdr['n-kv'])
    for j, (k, t, v) in enumerate(kvs):
        out += struct.pack('<Q', key_len.get(j, len(k))) + k + struct.pack('<I', t)
        if t == T_ARR and v[0] == 99:   # re-tagged array: claimed type, data of the real one
            out += struct.pack('<IQ', v[4], len(v[1]) if v[2] is None else v[2])
            out += b''.join(wval(v[3], x) for x in v[1])
        else:
            out += wval(t, v)
    for ti in tis:
        out += wstr(ti['name']) + struct.pack('<I', ti['ndims'])
        for d in ti['dims'][:ti['ndims']] + [1] * max(0, ti['ndims'] - len(ti['dims'])):
            out += struct.pack('<Q', d & 0xffffffffffffffff)
        out += struct.pack('<IQ', ti['type'] & 0xffffffff, ti['off'] & 0xffffffffffffffff)
    out += b'\0' * ((-len(out)) % align)
    out += data
    open(dst, 'wb').write(out)


main()
