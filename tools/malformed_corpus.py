#!/usr/bin/env python3
"""Writes the malformed-input corpus: checkpoint folders that are each wrong in one way, and a
manifest saying what each must produce. The Rust (moe-core/tests/malformed.rs), C ABI
(moe-ffi/tests/malformed.rs) and Python (moe-py/tests/test_malformed.py) tests load every case and
check that it gives the expected typed error (never a panic, an abort or a crash).

Usage: python3 tools/malformed_corpus.py OUT_DIR     (stdlib only; reads fixtures/ and models/)

Each manifest entry: {"name", "dir", "expect"}. `expect` is an error kind -- "not_found", "config",
"inconsistent", "unsupported", "unsupported_quantization", "format", "missing_tensor", "shape",
"dtype", "tokenizer" -- or
"error" (any typed error) or "any" (loads, or any typed error: a legal but odd value).

Cases: every integer key of config.json at 0, -1, 2^40 and 2^60 and every float key at 0 and -1, on a
GQA (Mixtral) and an MLA (DeepSeek V3) checkpoint; wrong types; an unknown model_type and rope type;
quantization configs the engine does not implement; config.json that is not JSON or not an object; safetensors whose header length runs past the file,
whose header is not JSON, that are truncated, shorter than the length prefix or empty, with offsets
past the end, overlapping tensors, a wrong dtype, a wrong shape or a missing tensor; an index naming
a missing shard, an index that is not JSON or names a path outside the folder; garbage
tokenizer.json, tokenizer_config.json, chat template and generation_config.json.
"""

import json
import os
import shutil
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GQA = os.path.join(ROOT, "fixtures", "mixtral")
MLA = os.path.join(ROOT, "fixtures", "deepseek_v3")
TOKENIZER = os.path.join(ROOT, "models", "tiny-deepseek-pycode", "tokenizer.json")

# Integer keys each base config has that moe reads, with the limits moe-core enforces
# (config/raw.rs `limit_of`); unread keys may hold anything.
READ_INT_KEYS = {
    "gqa": {
        "bos_token_id", "eos_token_id", "hidden_size", "intermediate_size",
        "max_position_embeddings", "num_attention_heads", "num_experts_per_tok",
        "num_hidden_layers", "num_key_value_heads", "num_local_experts", "vocab_size",
        "head_dim", "sliding_window",
    },
    "mla": {
        "bos_token_id", "eos_token_id", "first_k_dense_replace", "hidden_size",
        "intermediate_size", "kv_lora_rank", "max_position_embeddings", "moe_intermediate_size",
        "n_group", "n_routed_experts", "n_shared_experts", "num_attention_heads",
        "num_experts_per_tok", "num_hidden_layers", "q_lora_rank", "qk_nope_head_dim",
        "qk_rope_head_dim", "topk_group", "v_head_dim", "vocab_size",
    },
}
# Keys whose every listed value is wrong (they size tensors, or must be positive).
DIMENSIONS = {
    "hidden_size", "intermediate_size", "num_attention_heads", "num_experts_per_tok",
    "num_hidden_layers", "num_key_value_heads", "num_local_experts", "vocab_size", "head_dim",
    "kv_lora_rank", "moe_intermediate_size", "n_routed_experts", "q_lora_rank",
    "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim",
}
# Keys limited below 2^40 (so 2^40 is out of range for them too); token ids must fit 32 bits.
SMALL_LIMITS = DIMENSIONS | {
    "n_group", "topk_group", "n_shared_experts", "bos_token_id", "eos_token_id",
}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def write_safetensors(path, header, body, pad=True):
    h = json.dumps(header).encode()
    while pad and len(h) % 8:
        h += b" "
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + body)


class Corpus:
    def __init__(self, out):
        self.out = out
        self.cases = []

    def case(self, name, base, expect):
        d = os.path.join(self.out, name)
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(base, d, ignore=shutil.ignore_patterns("reference.*"))
        self.cases.append({"name": name, "dir": d, "expect": expect})
        return d

    def edit_config(self, d, f):
        p = os.path.join(d, "config.json")
        with open(p) as fh:
            cfg = json.load(fh)
        f(cfg)
        with open(p, "w") as fh:
            json.dump(cfg, fh)

    def write(self, d, name, content):
        with open(os.path.join(d, name), "wb") as f:
            f.write(content if isinstance(content, bytes) else content.encode())

    def edit_header(self, d, f, pad=True):
        p = os.path.join(d, "model.safetensors")
        header, body = read_safetensors(p)
        body = f(header, body)
        write_safetensors(p, header, body, pad)


def config_cases(c):
    for kind, base in (("gqa", GQA), ("mla", MLA)):
        with open(os.path.join(base, "config.json")) as f:
            cfg = json.load(f)
        read = READ_INT_KEYS[kind]
        ints = sorted(k for k, v in cfg.items() if type(v) is int) + ["head_dim"] * (kind == "gqa")
        for key in sorted(set(ints)):
            for label, value in (("0", 0), ("neg", -1), ("2e40", 1 << 40), ("2e60", 1 << 60)):
                if key not in read:
                    expect = "any"
                elif label in ("neg", "2e60"):
                    expect = "config"
                elif label == "2e40" and key in SMALL_LIMITS:
                    expect = "config"
                elif key in DIMENSIONS or (label == "0" and key == "max_position_embeddings"):
                    expect = "error"
                else:
                    expect = "any"
                d = c.case(f"config-{kind}-{key}-{label}", base, expect)
                c.edit_config(d, lambda m, k=key, v=value: m.__setitem__(k, v))
        floats = sorted(k for k, v in cfg.items() if type(v) is float)
        for key in floats:
            for label, value in (("0", 0.0), ("neg", -1.0)):
                expect = "inconsistent" if key == "rope_theta" else "any"
                d = c.case(f"config-{kind}-{key}-{label}", base, expect)
                c.edit_config(d, lambda m, k=key, v=value: m.__setitem__(k, v))
    # The report that started the bounds work: four billion layers aborted the host process.
    d = c.case("config-gqa-num_hidden_layers-4e9", GQA, "config")
    c.edit_config(d, lambda m: m.__setitem__("num_hidden_layers", 4_000_000_000))
    wrong_types = [
        ("vocab_size", "abc"), ("num_hidden_layers", 1.5), ("hidden_size", True),
        ("rope_scaling", 3), ("layer_types", 7), ("architectures", "MixtralForCausalLM"),
        ("rope_theta", "big"), ("eos_token_id", [1, "two"]), ("num_local_experts", [6]),
    ]
    for key, value in wrong_types:
        d = c.case(f"config-type-{key}", GQA, "config")
        c.edit_config(d, lambda m, k=key, v=value: m.__setitem__(k, v))
    d = c.case("config-model-type-5", GQA, "config")
    c.edit_config(d, lambda m: (m.__setitem__("model_type", 5), m.pop("architectures")))
    d = c.case("config-unknown-model-type", GQA, "unsupported")
    c.edit_config(d, lambda m: (m.__setitem__("model_type", "wobbly"), m.pop("architectures")))
    d = c.case("config-unknown-rope-type", GQA, "inconsistent")
    c.edit_config(d, lambda m: m.__setitem__("rope_scaling", {"rope_type": "wobbly", "factor": 2.0}))
    for name, q in (
        ("method", {"quant_method": "awq", "bits": 4}),
        ("bits", {"quant_method": "compressed-tensors", "format": "pack-quantized",
                  "config_groups": {"g": {"targets": ["Linear"], "weights": {
                      "num_bits": 3, "type": "int", "symmetric": True, "strategy": "group",
                      "group_size": 32}}}}),
        ("activations", {"quant_method": "compressed-tensors", "format": "pack-quantized",
                         "config_groups": {"g": {"targets": ["Linear"], "weights": {
                             "num_bits": 4, "type": "int", "symmetric": True,
                             "strategy": "group", "group_size": 32},
                             "input_activations": {"num_bits": 8, "type": "int"}}}}),
    ):
        d = c.case(f"config-unsupported-quant-{name}", GQA, "unsupported_quantization")
        c.edit_config(d, lambda m, q=q: m.__setitem__("quantization_config", q))
    d = c.case("config-layer-types-length", GQA, "inconsistent")
    c.edit_config(d, lambda m: m.__setitem__("layer_types", ["full_attention"]))
    for name, text in (("not-json", "{oops"), ("array", "[1, 2]"), ("empty", "")):
        d = c.case(f"config-{name}", GQA, "config")
        c.write(d, "config.json", text)
    d = c.case("config-missing", GQA, "not_found")
    os.remove(os.path.join(d, "config.json"))


def safetensors_cases(c):
    d = c.case("st-header-length-past-file", GQA, "format")
    p = os.path.join(d, "model.safetensors")
    with open(p, "r+b") as f:
        f.write(struct.pack("<Q", 1 << 40))
    d = c.case("st-garbage-header", GQA, "format")
    with open(os.path.join(d, "model.safetensors"), "r+b") as f:
        f.seek(8)
        f.write(b"\xff\xfe not json at all")
    d = c.case("st-truncated", GQA, "format")
    p = os.path.join(d, "model.safetensors")
    size = os.path.getsize(p)
    with open(p, "r+b") as f:
        f.truncate(size - 100)
    d = c.case("st-shorter-than-prefix", GQA, "format")
    c.write(d, "model.safetensors", b"\x01\x02\x03")
    d = c.case("st-empty", GQA, "format")
    c.write(d, "model.safetensors", b"")

    def first_weight(h):
        return sorted(k for k in h if k != "__metadata__" and h[k]["dtype"] == "BF16" and len(h[k]["shape"]) == 2)[0]

    def offsets_past_end(h, b):
        k = first_weight(h)
        s, e = h[k]["data_offsets"]
        h[k]["data_offsets"] = [len(b) - 2, len(b) - 2 + (e - s)]
        return b

    def overlapping(h, b):
        names = sorted((v["data_offsets"][0], k) for k, v in h.items() if k != "__metadata__")
        (_, a), (_, bname) = names[0], names[1]
        size = h[bname]["data_offsets"][1] - h[bname]["data_offsets"][0]
        h[bname]["data_offsets"] = [h[a]["data_offsets"][0], h[a]["data_offsets"][0] + size]
        return b

    def wrong_dtype(h, b):
        h[first_weight(h)]["dtype"] = "I16"
        return b

    def wrong_shape(h, b):
        k = first_weight(h)
        r, col = h[k]["shape"]
        h[k]["shape"] = [col, r] if r != col else [r * 2, col // 2]
        return b

    def missing(h, b):
        k = first_weight(h)
        h[k + ".renamed"] = h.pop(k)
        return b

    def size_mismatch(h, b):
        k = first_weight(h)
        h[k]["shape"] = [h[k]["shape"][0] * 2, h[k]["shape"][1]]
        return b

    def huge_shape(h, b):
        h[first_weight(h)]["shape"] = [1 << 62, 1 << 62]
        return b

    for name, f, expect in (
        ("st-offsets-past-end", offsets_past_end, "format"),
        ("st-overlapping", overlapping, "format"),
        ("st-wrong-dtype", wrong_dtype, "dtype"),
        ("st-wrong-shape", wrong_shape, "shape"),
        ("st-missing-tensor", missing, "missing_tensor"),
        ("st-shape-size-mismatch", size_mismatch, "format"),
        ("st-shape-overflow", huge_shape, "format"),
    ):
        d = c.case(name, GQA, expect)
        c.edit_header(d, f)


def shard_cases(c):
    d = c.case("shard-index-missing-shard", GQA, "not_found")
    header, _ = read_safetensors(os.path.join(d, "model.safetensors"))
    weight_map = {k: "model-00001-of-00002.safetensors" for k in header if k != "__metadata__"}
    c.write(d, "model.safetensors.index.json", json.dumps({"weight_map": weight_map}))
    d = c.case("shard-index-not-json", GQA, "format")
    c.write(d, "model.safetensors.index.json", "{weight_map: nope")
    d = c.case("shard-index-path-escape", GQA, "format")
    c.write(d, "model.safetensors.index.json",
            json.dumps({"weight_map": {"model.norm.weight": "../model.safetensors"}}))
    d = c.case("shard-index-no-weight-map", GQA, "format")
    c.write(d, "model.safetensors.index.json", json.dumps({"metadata": {}}))


def text_cases(c):
    d = c.case("tokenizer-garbage", GQA, "tokenizer")
    c.write(d, "tokenizer.json", b"\x00\xff this is not a tokenizer")
    d = c.case("tokenizer-truncated", GQA, "tokenizer")  # made the tokenizers crate panic (fuzzing)
    c.write(d, "tokenizer.json", '{"decoder":')
    d = c.case("tokenizer-config-garbage", GQA, "tokenizer")
    shutil.copy(TOKENIZER, os.path.join(d, "tokenizer.json"))
    c.write(d, "tokenizer_config.json", "{not json")
    d = c.case("chat-template-garbage", GQA, "tokenizer")
    shutil.copy(TOKENIZER, os.path.join(d, "tokenizer.json"))
    c.write(d, "tokenizer_config.json", json.dumps({"chat_template": "{% for m in %}{{ }"}))
    d = c.case("generation-config-garbage", GQA, "config")
    c.write(d, "generation_config.json", "{oops")
    d = c.case("generation-config-eos-2e40", GQA, "config")
    c.write(d, "generation_config.json", json.dumps({"eos_token_id": 1 << 40}))
    d = c.case("generation-config-wrong-type", GQA, "config")
    c.write(d, "generation_config.json", json.dumps({"max_new_tokens": "many"}))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = os.path.abspath(sys.argv[1])
    os.makedirs(out, exist_ok=True)
    c = Corpus(out)
    config_cases(c)
    safetensors_cases(c)
    shard_cases(c)
    text_cases(c)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(c.cases, f, indent=1)
    print(f"{len(c.cases)} malformed cases in {out}")


if __name__ == "__main__":
    main()
