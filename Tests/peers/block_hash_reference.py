#!/usr/bin/env python3
"""vLLM's `sha256_cbor` prefix-cache block hashes, computed independently of kvroute.

Follows vLLM's vllm/v1/core/kv_cache_utils.py (init_none_hash, hash_block_tokens,
generate_block_hash_extra_keys) and vllm/utils/hashing.py (sha256_cbor):

    NONE_HASH  = sha256(cbor2.dumps(PYTHONHASHSEED, canonical=True))
    block hash = sha256(cbor2.dumps((parent or NONE_HASH, tuple(tokens), extra_keys),
                                    canonical=True))
    extra_keys = tuple(lora names + mm keys + [cache_salt if first block and salt])
                 or None when empty

KV events carry the low 64 bits: the last 8 digest bytes, big-endian.

stdin:  {"cases": [{"seed": "0", "block_size": 16, "tokens": [...],
                    "lora_name": null | "name", "cache_salt": null | "salt"}, ...]}
stdout: {"cases": [{"none_hash": hex, "hashes": [hex, ...], "low64": ["decimal", ...]}]}
"""

import hashlib
import json
import sys

import cbor2


def sha256_cbor(obj) -> bytes:
    return hashlib.sha256(cbor2.dumps(obj, canonical=True)).digest()


def extra_keys(block_index: int, lora_name, cache_salt):
    keys = []
    if lora_name is not None:
        keys.append(lora_name)
    if block_index == 0 and cache_salt:
        keys.append(cache_salt)
    return tuple(keys) if keys else None


def block_hashes(seed: str, block_size: int, tokens, lora_name, cache_salt):
    none_hash = sha256_cbor(seed)
    parent = None
    out = []
    for i in range(len(tokens) // block_size):
        block = tuple(tokens[i * block_size:(i + 1) * block_size])
        digest = sha256_cbor((parent or none_hash, block, extra_keys(i, lora_name, cache_salt)))
        out.append(digest)
        parent = digest
    return none_hash, out


def main() -> None:
    request = json.load(sys.stdin)
    answers = []
    for case in request["cases"]:
        none_hash, hashes = block_hashes(
            case["seed"], case["block_size"], case["tokens"], case.get("lora_name"), case.get("cache_salt")
        )
        answers.append({
            "none_hash": none_hash.hex(),
            "hashes": [h.hex() for h in hashes],
            "low64": [str(int.from_bytes(h[-8:], "big")) for h in hashes],
        })
    json.dump({"cases": answers}, sys.stdout)


if __name__ == "__main__":
    main()
