"""Packs and unpacks what scripts/bench-gpu carries to a GPU machine, within the device tool's
64 MiB (the working tree that travels, tracked files included): the stripped benchmark binary
xz-compressed (52 MB -> ~5.4 MB), and the weights, exactly, as their safetensors header plus the
four byte planes of the f32 values, xz-compressed (the exponent bytes compress to a third:
56 -> ~47 MiB), because the tracked weights file itself has to stay behind (see
scripts/bench-gpu). Standard library only.

usage: gpu_bundle.py pack BINARY WEIGHTS DIR     writes DIR/bench-gpu.xz, DIR/weights.planes.xz
       gpu_bundle.py unpack DIR WORK             writes WORK/bench-gpu, WORK/vgg16-conv.safetensors
"""
import hashlib
import lzma
import os
import sys


def pack(binary, weights, out):
    os.makedirs(out, exist_ok=True)
    with open(binary, "rb") as f, lzma.open(os.path.join(out, "bench-gpu.xz"), "wb", preset=9 | lzma.PRESET_EXTREME) as z:
        z.write(f.read())
    raw = open(weights, "rb").read()
    n = 8 + int.from_bytes(raw[:8], "little")
    header, body = raw[:n], raw[n:]
    assert len(body) % 4 == 0
    with lzma.open(os.path.join(out, "weights.planes.xz"), "wb", preset=6) as z:
        z.write(len(header).to_bytes(8, "little") + header + hashlib.sha256(raw).digest())
        for plane in range(4):
            z.write(body[plane::4])


def unpack(bundle, work):
    os.makedirs(work, exist_ok=True)
    with lzma.open(os.path.join(bundle, "bench-gpu.xz")) as z, open(os.path.join(work, "bench-gpu"), "wb") as f:
        f.write(z.read())
    os.chmod(os.path.join(work, "bench-gpu"), 0o755)
    data = lzma.open(os.path.join(bundle, "weights.planes.xz")).read()
    n = int.from_bytes(data[:8], "little")
    header, digest, planes = data[8:8 + n], data[8 + n:8 + n + 32], data[8 + n + 32:]
    size = len(planes) // 4
    body = bytearray(len(planes))
    for plane in range(4):
        body[plane::4] = planes[plane * size:(plane + 1) * size]
    raw = header + bytes(body)
    if hashlib.sha256(raw).digest() != digest:
        sys.exit("unpack: the weights do not match their checksum")
    with open(os.path.join(work, "vgg16-conv.safetensors"), "wb") as f:
        f.write(raw)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "pack":
        pack(*sys.argv[2:])
    elif len(sys.argv) == 4 and sys.argv[1] == "unpack":
        unpack(*sys.argv[2:])
    else:
        sys.exit(__doc__)
