#!/usr/bin/python3
"""Writes the small seed corpora of the fuzz targets into corpus/<target>/ (valid inputs and
a few corrupt ones). Run once; the files are committed. Only the standard library."""
import gzip, json, os, struct, zlib

here = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(here, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# IDX: 2 images of 3x3, and their labels; gzipped copies; a truncated and a bad-magic file.
images = struct.pack(">IIII", 0x803, 2, 3, 3) + bytes(range(18))
labels = struct.pack(">II", 0x801, 2) + bytes([3, 9])
put("idx", "images", images)
put("idx", "labels", labels)
put("idx", "images.gz", gzip.compress(images, mtime=0))  # mtime 0: the same bytes every run
put("idx", "labels.gz", gzip.compress(labels, mtime=0))
put("idx", "truncated", images[:20])
put("idx", "bad_magic", struct.pack(">IIII", 0x804, 1, 2, 2) + bytes(4))

# CIFAR-10: one and two records, and a truncated record.
record = bytes([7]) + bytes(i % 256 for i in range(3072))
put("cifar", "one", record)
put("cifar", "two", record + bytes([2]) + bytes(3072))
put("cifar", "truncated", record[:1000])

# Configs: the shipped ones, and small valid and invalid ones.
configs = os.path.join(here, "..", "..", "configs")
for f in sorted(os.listdir(configs)):
    with open(os.path.join(configs, f), "rb") as src:
        put("config", f, src.read())
put("config", "flow.yaml", b"model: {dim: 32, heads: 2, image_size: [16, 32]}\ndata: {normalize: {mean: [0.5], std: [0.2]}}\n")
put("config", "unknown_key.yaml", b"model:\n  depht: 3\n")
put("config", "override", b"optim.lr=3e-4")
put("config", "bad_yaml.yaml", b"model: [dim: 3\n")


def safetensors(tensors, metadata=None):
    header, blob = {}, b""
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    raw += b" " * ((8 - len(raw) % 8) % 8)
    return struct.pack("<Q", len(raw)) + raw + blob


valid = safetensors({"w": ("F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)), "i": ("I64", [1], struct.pack("<q", 5)),
                     "s": ("F64", [], struct.pack("<d", 0.5)), "e": ("BF16", [0, 3], b"")}, {"format": "x"})
put("safetensors", "valid", valid)
put("safetensors", "truncated", valid[: len(valid) - 3])
put("safetensors", "huge_header", struct.pack("<Q", 1 << 60) + b"{}")

# Images: a grey PGM, an RGB PPM, a 24-bit BMP and a PNG, each 4x3.
w, h = 4, 3
grey = bytes((x * 60 + y * 20) % 256 for y in range(h) for x in range(w))
rgb = bytes(v for y in range(h) for x in range(w) for v in ((x * 60) % 256, (y * 80) % 256, 128))
put("image", "grey.pgm", b"P5\n4 3\n255\n" + grey)
put("image", "rgb.ppm", b"P6\n4 3\n255\n" + rgb)
rows = b"".join(bytes(v for x in range(w) for v in rgb[(y * w + x) * 3:(y * w + x) * 3 + 3][::-1]) for y in reversed(range(h)))
put("image", "rgb.bmp", b"BM" + struct.pack("<IHHI", 54 + len(rows), 0, 0, 54) +
    struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(rows), 2835, 2835, 0, 0) + rows)


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


raw = b"".join(b"\x00" + rgb[y * w * 3:(y + 1) * w * 3] for y in range(h))
put("image", "rgb.png", b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
    chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
put("image", "not_an_image", b"hello")

# Command lines, one argument per line: each command with its options, and a few bad ones.
put("cli", "train", b"train\nconfigs/mnist_vit.yaml\n--set\noptim.lr=3e-4\n")
put("cli", "eval", b"eval\nconfigs/mnist_vit.yaml\n--checkpoint\n")
put("cli", "predict", b"predict\n--checkpoint\nruns/x/best.safetensors\n--top-k\n0\nimg.png\n")
put("cli", "bench", b"bench\n--preset\nmnist\n--steps\n3\n--threads\n2\n--profile\n")
put("cli", "version", b"--version\n")

# Inputs the fuzzers found (docs/hardening.md), kept so every fuzz pass replays them.
put("config", "regression_leading_comma", b",ptm\xf8i=r.l3e\xbc\xca,4")          # hung yaml-cpp's LoadAll
put("image", "regression_zero_height.pgm", b"P5\n3 \x14\xdc")                    # 3x0 image: stb resize assert
put("image", "regression_huge_header", b"\x11\x00\n4\x0c\x00\x00\x00\x00\x00\x8b\x00\x00P58 8")  # claims 20480x14389
