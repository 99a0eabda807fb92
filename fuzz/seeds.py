#!/usr/bin/env python3
"""Builds the seed corpora of the fuzz targets (fuzz/corpus/<target>/) from fixtures/ and models/.

loader: each seed is a whole checkpoint directory packed as the loader target reads it (see

fuzz_targets/loader.rs): config.json, the index (empty when the fixture has one file),
generation_config.json, then each shard as `<name>\\n<u32 LE zero padding><8-byte length><header>`.
To keep seeds small, checkpoints keep their first two layers, and the tensor data, which the loader
does not interpret, is replaced by zero padding of the same size (so every offset stays valid).

config: the fixtures' config.json files. tokenizer: the shipped model's tokenizer.json and two tiny
ones, each with a chat template and messages. sampler and c_api: fixed byte strings that reach
their main paths (both targets read bytes as a stream of values, see moe_fuzz::Reader).

  python3 fuzz/seeds.py                 # writes fuzz/corpus/*/
  python3 fuzz/seeds.py --unpack DIR    # also writes each seed as a checkpoint directory under DIR
"""
import argparse
import json
import re
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEPARATOR = b"\n@@moe-fuzz@@\n"  # moe_fuzz::SEPARATOR
KEEP_LAYERS = 2


def read_header(path):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n])


def layer_of(name):
    m = re.search(r"\.layers\.(\d+)\.", name)
    return int(m.group(1)) if m else None


def shard_bytes(tensors):
    """A safetensors header for `tensors` (name -> (dtype, shape, nbytes)) with packed offsets, and
    the data size it needs."""
    header = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name in sorted(tensors):
        dtype, shape, nbytes = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text, offset


def shrink_config(config):
    n = config["num_hidden_layers"]
    keep = min(n, KEEP_LAYERS)
    out = dict(config)
    out["num_hidden_layers"] = keep
    for k, v in config.items():
        if isinstance(v, list) and len(v) == n:
            out[k] = v[:keep]
    if isinstance(config.get("moe_layers"), list):
        out["moe_layers"] = [i for i in config["moe_layers"] if i < keep]
    return out, keep


def pack(config, index, generation, shards):
    """shards: list of (file name, {tensor: (dtype, shape, nbytes)})."""
    parts = [json.dumps(config, indent=1).encode(), index, generation]
    for name, tensors in shards:
        head, data = shard_bytes(tensors)
        parts.append(name.encode() + b"\n" + struct.pack("<I", data) + head)
    return SEPARATOR.join(parts)


def fixture_seeds(fixture):
    config, keep = shrink_config(json.loads((fixture / "config.json").read_text()))
    gen_path = fixture / "generation_config.json"
    generation = gen_path.read_bytes() if gen_path.exists() else b""
    index_path = fixture / "model.safetensors.index.json"
    if index_path.exists():
        weight_map = json.loads(index_path.read_text())["weight_map"]
        files = sorted(set(weight_map.values()))
    else:
        files = ["model.safetensors"]
    shards = []
    for f in files:
        tensors = {}
        for name, t in read_header(fixture / f).items():
            if name == "__metadata__":
                continue
            layer = layer_of(name)
            if layer is not None and layer >= keep:
                continue
            a, b = t["data_offsets"]
            tensors[name] = (t["dtype"], t["shape"], b - a)
        if tensors:
            shards.append((f, tensors))
    seeds = {}
    if index_path.exists():
        renamed = [(f"model-{i + 1:05}-of-{len(shards):05}.safetensors", t) for i, (_, t) in enumerate(shards)]
        index = {"metadata": {}, "weight_map": {n: f for f, t in renamed for n in sorted(t)}}
        seeds[fixture.name] = pack(config, json.dumps(index, indent=1).encode(), generation, renamed)
    else:
        seeds[fixture.name] = pack(config, b"", generation, shards)
        # The same checkpoint split in two shards with an index.
        (_, tensors), = shards
        names = sorted(tensors)
        half = [(f"model-0000{i + 1}-of-00002.safetensors", {n: tensors[n] for n in part})
                for i, part in enumerate((names[: len(names) // 2], names[len(names) // 2 :]))]
        index = {"metadata": {}, "weight_map": {n: f for f, t in half for n in sorted(t)}}
        seeds[fixture.name + "-sharded"] = pack(config, json.dumps(index, indent=1).encode(), b"", half)
    return seeds


def unpack(seed, out):
    parts = seed.split(SEPARATOR)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_bytes(parts[0])
    if parts[1]:
        (out / "model.safetensors.index.json").write_bytes(parts[1])
    if parts[2]:
        (out / "generation_config.json").write_bytes(parts[2])
    for shard in parts[3:]:
        name, rest = shard.split(b"\n", 1)
        (pad,) = struct.unpack("<I", rest[:4])
        (out / name.decode()).write_bytes(rest[4:] + bytes(pad))


CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
LOOP_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m.role == 'system' %}[SYS]{{ m.content | trim }}"
    "{% elif loop.index0 % 2 == 0 %}[U]{{ m.content }}{% else %}[A]{{ m.content }}{{ eos_token }}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}[A]{% endif %}"
)
TINY_WORDLEVEL = {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [{"id": 3, "content": "<eos>", "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": False, "special": True}],
    "normalizer": {"type": "Lowercase"}, "pre_tokenizer": {"type": "Whitespace"},
    "post_processor": None, "decoder": None,
    "model": {"type": "WordLevel", "vocab": {"hello": 0, "world": 1, "[UNK]": 2, "<eos>": 3},
              "unk_token": "[UNK]"},
}
TINY_BPE = {
    "version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
    "normalizer": None,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    "post_processor": None,
    "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
              "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
              "vocab": {"a": 0, "b": 1, "c": 2, "\u0120": 3, "ab": 4, "abc": 5},
              "merges": ["a b", "ab c"]},
}


def other_seeds():
    """{target: {name: bytes}} for config, tokenizer, sampler, c_api and snapshot."""
    seeds = {"config": {}, "tokenizer": {}, "sampler": {}, "c_api": {}, "snapshot": {}}
    for d in sorted((ROOT / "fixtures").iterdir()) + sorted((ROOT / "models").iterdir()):
        if (d / "config.json").exists():
            seeds["config"][d.name] = (d / "config.json").read_bytes()
    messages = [b"system:  be brief ", b"hello world", "h\u00e9llo \u4e16\u754c".encode(), b"abc"]
    real = ROOT / "models" / "tiny-deepseek-pycode" / "tokenizer.json"
    tokenizers = {"wordlevel": json.dumps(TINY_WORDLEVEL).encode(), "bpe": json.dumps(TINY_BPE).encode()}
    if real.exists():
        tokenizers["pycode"] = real.read_bytes()
    for name, tok in tokenizers.items():
        for tname, template in (("chatml", CHATML), ("loop", LOOP_TEMPLATE)):
            if name == "pycode" and tname != "chatml":
                continue  # 120 KB each: one is enough
            seeds["tokenizer"][f"{name}-{tname}"] = SEPARATOR.join([tok, template.encode()] + messages)
    # sampler (see fuzz_targets/sampler.rs): params, then rounds of (length u16, logits, history).
    def param(code, value):  # Reader::param: 1 = u8 / 100
        return bytes([code, value])
    greedy = param(3, 0) + bytes([0]) + param(3, 1) + param(3, 0) + param(3, 1) + bytes(8)
    sampled = param(1, 80) + bytes([1, 40]) + param(1, 90) + param(1, 5) + param(1, 110) + bytes(range(8))
    rounds = b""
    for n in (5, 64):
        logits = b"".join(bytes([2, (i * 37) % 256]) for i in range(n))  # small ordinary values
        rounds += struct.pack("<H", n) + logits + struct.pack("<H", 3) + bytes([0, 1, 0, 2, 1, 200])
    special = struct.pack("<H", 4) + bytes([1, 0, 1, 1, 1, 2, 0, 0, 0, 0xC0, 0x7F]) + struct.pack("<H", 0)
    seeds["sampler"]["greedy"] = greedy + rounds + special
    seeds["sampler"]["sampled"] = sampled + rounds + special
    # c_api (see fuzz_targets/c_api.rs, `step`): opcodes and their arguments.
    new_session = bytes([1, 0, 1]) + struct.pack("<H", 16) + bytes([0, 1, 1])  # mixtral, max_context 16
    prefill = bytes([2, 1, 0]) + struct.pack("<H", 3) + bytes([1, 5, 1, 6, 1, 7]) + bytes([1])  # vocab logits
    decode = bytes([4, 1, 0]) + struct.pack("<H", 1) + bytes([1, 9]) + bytes([1])
    query = bytes([7, 1, 0, 1, 1, 1])
    sampler = bytes([8]) + bytes([1, 70, 0, 0, 0, 0, 1, 90, 1, 0, 3, 1]) + bytes(8) + bytes([1])
    sample = bytes([9, 1, 0]) + struct.pack("<H", 4) + bytes([0, 1, 0, 3, 0, 2, 0, 9]) + struct.pack("<H", 0)
    text = b"def f(x):"
    tokenize = bytes([12, 1]) + struct.pack("<H", len(text)) + text + struct.pack("<H", 32) + bytes([0, 1, 1])
    detok = bytes([14, 1]) + struct.pack("<H", 3) + bytes([1, 40, 1, 41, 1, 42]) + struct.pack("<H", 64) + bytes([0, 0])
    gen_session = bytes([1, 1, 1]) + struct.pack("<H", 32) + bytes([0, 1, 1])
    generate = bytes([16, 1, 1]) + struct.pack("<H", 4) + b"def " + struct.pack("<H", 2) + bytes(12)
    seeds["c_api"]["session"] = new_session + prefill + decode + query + bytes([6, 1, 0, 1]) + query
    seeds["c_api"]["sampler"] = sampler + sample + bytes([11, 0, 0]) + bytes([10, 4]) + bytes(8) + bytes([2])
    seeds["c_api"]["text"] = tokenize + detok + bytes([0, 1]) + bytes([19]) + bytes(4)
    seeds["c_api"]["generate"] = gen_session + generate + query
    # snapshot (see fuzz_targets/snapshot.rs): mode byte (bits 0-1 mode, 2-3 precision, 4 model), then
    # edits (u32 offset, xor) and a u16 cut.
    no_cut = struct.pack("<H", 0xFFFF)
    for model, mname in ((0, "gpt_oss"), (1, "deepseek_v32")):
        for prec, pname in ((0, "f32"), (1, "bf16"), (2, "int8")):
            b = (model << 4) | (prec << 2) | 1  # mode 1: edited, not re-signed
            seeds["snapshot"][f"{mname}-{pname}"] = bytes([b]) + no_cut
            # Mode 2 (re-signed): the first layer's first row count grown by one.
            r = b + 1
            edit = struct.pack("<I", 56 + 12 * 4 + 4 + 1 + 8) + bytes([1])
            seeds["snapshot"][f"{mname}-{pname}-resigned"] = bytes([r]) + edit + no_cut
    seeds["snapshot"]["raw"] = bytes([0]) + b"MOESNAP\x00" + struct.pack("<I", 1) + bytes(50)
    return seeds


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--unpack", type=Path, help="also write each seed as a checkpoint directory here")
    args = ap.parse_args()
    out = ROOT / "fuzz" / "corpus" / "loader"
    out.mkdir(parents=True, exist_ok=True)
    for fixture in sorted((ROOT / "fixtures").iterdir()):
        if not (fixture / "config.json").exists():
            continue
        for name, seed in fixture_seeds(fixture).items():
            (out / name).write_bytes(seed)
            if args.unpack:
                unpack(seed, args.unpack / name)
            print(f"loader/{name}: {len(seed)} bytes")
    for target, seeds in other_seeds().items():
        out = ROOT / "fuzz" / "corpus" / target
        out.mkdir(parents=True, exist_ok=True)
        for name, seed in seeds.items():
            (out / name).write_bytes(seed)
            print(f"{target}/{name}: {len(seed)} bytes")


if __name__ == "__main__":
    main()
