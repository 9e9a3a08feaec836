#!/usr/bin/env python3
"""Checks `kvroute sim` against a real vLLM (CPU build) serving a tiny Llama: the same
requests go to both, and their prefix-cache answers, counters and KV events must agree.

Commands:
  make-model --dir DIR --tokenizer-dir T --template FILE
      (run with vLLM's Python: needs transformers and torch) writes a tiny random-weight
      Llama with Llama-3's tokenizer.json / tokenizer_config.json from T, and the Llama 3.2
      chat template to FILE. Does nothing when DIR already holds the model.
  check --vllm URL --vllm-events tcp://127.0.0.1:P --sim URL [--sim-events tcp://…]
        --model NAME --out DIR
      (run with a Python that has pyzmq, msgpack and cbor2) subscribes to both event
      streams, sends every case to vLLM then to the simulator, and compares:
        - usage.prompt_tokens and usage.prompt_tokens_details.cached_tokens per request,
        - the vllm:prefix_cache_queries_total / _hits_total deltas per request,
        - every vLLM BlockStored's hashes against an independent sha256_cbor computation
          (PYTHONHASHSEED=0), chained from parent_block_hash,
        - the block index the events build (stored, removed, cleared) against every full
          block of the prompts sent since the last reset (the cache is far larger than
          the prompts, so nothing is evicted),
        - with --sim-events: the simulator's stream has the same layout, event types,
          field names and block hashes.
      It writes to DIR: vllm-events.jsonl and sim-events.jsonl ({"topic", "seq", "payload"
      hex} per message), expected.json (block size, seed, the low-64 hashes the index must
      hold at the end) and report.json, prints a report, and exits 1 on any mismatch.
"""

import argparse
import hashlib
import json
import os
import random
import sys
import threading
import time
import urllib.error
import urllib.request

BLOCK_SIZE = 32
HASH_SEED = "0"


# ---------- the tiny model ----------

def make_model(args):
    import shutil

    if os.path.exists(os.path.join(args.dir, "config.json")) and os.path.exists(os.path.join(args.dir, "tokenizer.json")):
        print(f"model: {args.dir} (already built)")
    else:
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM

        torch.manual_seed(0)
        config = LlamaConfig(
            vocab_size=128256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=1, bos_token_id=128000, eos_token_id=128001,
            tie_word_embeddings=True, max_position_embeddings=2048,
        )
        tmp = args.dir + ".partial"
        shutil.rmtree(tmp, ignore_errors=True)
        LlamaForCausalLM(config).save_pretrained(tmp)
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(args.tokenizer_dir, name), os.path.join(tmp, name))
        shutil.rmtree(args.dir, ignore_errors=True)
        os.rename(tmp, args.dir)
        print(f"model: built {args.dir}")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from tokenize_reference import LLAMA32_TEMPLATE

    with open(args.template, "w", encoding="utf-8") as f:
        f.write(LLAMA32_TEMPLATE)


# ---------- sha256_cbor block hashes (vLLM's kv_cache_utils, independently) ----------

def sha256_cbor(obj):
    import cbor2

    return hashlib.sha256(cbor2.dumps(obj, canonical=True)).digest()


NONE_HASH = None


def none_hash():
    global NONE_HASH
    if NONE_HASH is None:
        NONE_HASH = sha256_cbor(HASH_SEED)
    return NONE_HASH


def low64(digest):
    return int.from_bytes(digest[-8:], "big")


def block_digests(tokens, parent=None):
    out = []
    for i in range(len(tokens) // BLOCK_SIZE):
        parent = sha256_cbor((parent or none_hash(), tuple(tokens[i * BLOCK_SIZE:(i + 1) * BLOCK_SIZE]), None))
        out.append(parent)
    return out


# ---------- HTTP ----------

def http(method, url, body=None, timeout=120):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def counters(base):
    """Sums of vllm:prefix_cache_queries_total and _hits_total over all label sets."""
    status, text = http("GET", base + "/metrics")
    if status != 200:
        raise RuntimeError(f"{base}/metrics answered {status}")
    sums = {"queries": 0.0, "hits": 0.0}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        key = {"vllm:prefix_cache_queries_total": "queries", "vllm:prefix_cache_hits_total": "hits"}.get(name)
        if key:
            sums[key] += float(line.rsplit(" ", 1)[1])
    return sums


# ---------- KV event capture ----------

class Capture:
    """A SUB socket connected to a publisher that binds, recording every message."""

    def __init__(self, endpoint):
        import zmq

        self.zmq = zmq
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.messages = []
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        poller = self.zmq.Poller()
        poller.register(self.sock, self.zmq.POLLIN)
        while not self.stop_flag.is_set():
            if dict(poller.poll(100)).get(self.sock):
                frames = self.sock.recv_multipart()
                self.messages.append(frames)

    def count(self):
        return len(self.messages)

    def close(self):
        self.stop_flag.set()
        self.thread.join()
        self.sock.close()

    def save(self, path):
        with open(path, "w") as f:
            for frames in self.messages:
                topic = frames[0].decode("utf-8", "replace") if frames else ""
                seq = int.from_bytes(frames[1], "big", signed=True) if len(frames) > 1 and len(frames[1]) == 8 else None
                payload = frames[-1].hex() if len(frames) > 2 else ""
                f.write(json.dumps({"topic": topic, "seq": seq, "frames": len(frames), "payload": payload}) + "\n")


def quiet_wait(capture, seconds=1.0, limit=15.0):
    """Waits until no message arrived for `seconds` (at most `limit`)."""
    deadline = time.time() + limit
    last, since = capture.count(), time.time()
    while time.time() < deadline:
        time.sleep(0.1)
        n = capture.count()
        if n != last:
            last, since = n, time.time()
        elif time.time() - since >= seconds:
            return


# ---------- cases ----------

def build_cases():
    rng = random.Random(20260)

    def toks(n):
        return [rng.randrange(1000, 120000) for _ in range(n)]

    a = toks(200)
    d32 = toks(32)
    d64 = d32 + toks(32)
    long = toks(1000)
    b = toks(130)
    system = ("You are a careful assistant for a logistics company. " * 30).strip()
    T = lambda name, prompt, ref=None: {"name": name, "kind": "tokens", "prompt": prompt, "reference": ref}
    cases = [
        T("200 tokens, cold", a, 0),
        T("200 tokens again", a, 192),
        T("192-token block-aligned prefix", a[:192], 160),
        T("shares 100 tokens", a[:100] + toks(100), 96),
        T("31 tokens, cold", d32[:31], 0),
        T("31 tokens again", d32[:31], 0),
        T("32 tokens (prefix of the 31 plus one)", d32, 0),
        T("32 tokens again (one block, recomputed)", d32, 0),
        T("64 tokens sharing one block", d64),
        T("64 tokens again", d64),
        T("65 tokens", d64 + toks(1)),
        T("33 tokens", d32 + toks(1)),
        T("token 50 changed", a[:50] + [a[50] + 1] + a[51:]),
        T("first token changed", [a[0] + 1] + a[1:]),
        T("1000 tokens, cold", long),
        T("1000 tokens again", long),
        T("500 shared of 1000", long[:500] + toks(500)),
        T("1 token", toks(1)),
        # Text and chat prompts compare tokenizers and chat templates too: reported, and
        # required only with --strict-text.
        {"name": "text prompt", "kind": "text", "prompt": "The quick brown fox jumps over the lazy dog. " * 20},
        {"name": "text prompt again", "kind": "text", "prompt": "The quick brown fox jumps over the lazy dog. " * 20},
        {"name": "chat", "kind": "chat", "messages": [{"role": "system", "content": system}, {"role": "user", "content": "Where is my parcel?"}]},
        {"name": "chat, next turn", "kind": "chat", "messages": [
            {"role": "system", "content": system}, {"role": "user", "content": "Where is my parcel?"},
            {"role": "assistant", "content": "It left the depot this morning."}, {"role": "user", "content": "When will it arrive?"}]},
        {"name": "reset", "kind": "reset"},
        T("200 tokens after reset", a, 0),
        T("200 tokens again after reset", a, 192),
        T("130 tokens, cold", b, 0),
        T("96 shared of 130", b[:96] + toks(34), 96),
    ]
    return cases


def send(base, model, case):
    if case["kind"] == "chat":
        path, body = "/v1/chat/completions", {"model": model, "messages": case["messages"]}
    else:
        path, body = "/v1/completions", {"model": model, "prompt": case["prompt"]}
    body.update({"max_tokens": 1, "temperature": 0})
    status, text = http("POST", base + path, body)
    if status != 200:
        return {"error": f"{status} {text[:300]}"}
    usage = json.loads(text).get("usage") or {}
    details = usage.get("prompt_tokens_details") or {}
    return {"prompt_tokens": usage.get("prompt_tokens"), "cached_tokens": details.get("cached_tokens")}


def settled_counters(base, before, expected_queries, limit=3.0):
    """The counters once the request's queries show (vLLM records them off the response path)."""
    deadline = time.time() + limit
    while True:
        now = counters(base)
        if now["queries"] - before["queries"] >= expected_queries or time.time() > deadline:
            return now
        time.sleep(0.05)


# ---------- event analysis ----------

def decode_messages(path):
    import msgpack

    out = []
    with open(path) as f:
        for line in f:
            m = json.loads(line)
            m["batch"] = msgpack.unpackb(bytes.fromhex(m["payload"]), raw=False, strict_map_key=False) if m["payload"] else None
            out.append(m)
    return out


def event_type(ev):
    if isinstance(ev, dict):
        return ev.get("type")
    if isinstance(ev, list) and ev:
        return ev[0]
    return None


def analyse(messages, label, problems):
    """Checks one stream; returns its index (low64 set), shapes and stored hashes."""
    digests = {}  # low64 -> full digest, from blocks already verified
    index = set()
    shapes = {}
    stored = set()
    counts = {"batches": 0, "BlockStored": 0, "BlockRemoved": 0, "AllBlocksCleared": 0, "blocks_stored": 0}
    seqs = [m["seq"] for m in messages]
    if seqs and seqs != list(range(seqs[0], seqs[0] + len(seqs))):
        problems.append(f"{label}: seq numbers not consecutive: {seqs[:20]}")
    if seqs and seqs[0] != 0:
        problems.append(f"{label}: first seq is {seqs[0]}, not 0 (a batch was missed)")
    for m in messages:
        batch = m["batch"]
        counts["batches"] += 1
        if m["frames"] != 3:
            problems.append(f"{label}: message with {m['frames']} frames")
        layout = "positional" if isinstance(batch, list) else "named" if isinstance(batch, dict) else type(batch).__name__
        shapes.setdefault("batch", set()).add(layout)
        events = batch[1] if isinstance(batch, list) else (batch or {}).get("events", [])
        for ev in events:
            t = event_type(ev)
            counts[t] = counts.get(t, 0) + 1
            shapes.setdefault(t, set()).add(tuple(ev.keys()) if isinstance(ev, dict) else ("positional", len(ev)))
            f = ev if isinstance(ev, dict) else {}
            if t == "BlockStored":
                hashes = f.get("block_hashes") or []
                tokens = f.get("token_ids") or []
                if f.get("block_size") != BLOCK_SIZE:
                    problems.append(f"{label}: block_size {f.get('block_size')}")
                if len(tokens) != len(hashes) * BLOCK_SIZE:
                    problems.append(f"{label}: {len(hashes)} hashes but {len(tokens)} tokens")
                parent_low = f.get("parent_block_hash")
                parent = None
                if parent_low is not None:
                    parent = digests.get(parent_low)
                    if parent is None:
                        problems.append(f"{label}: parent {parent_low} never stored before")
                        continue
                computed = block_digests(tokens, parent)
                for h, d in zip(hashes, computed):
                    if h != low64(d):
                        problems.append(f"{label}: block hash {h} != computed {low64(d)}")
                    digests[low64(d)] = d
                    if h in index:
                        counts["stored_again"] = counts.get("stored_again", 0) + 1
                    index.add(h)
                    stored.add(h)
                counts["blocks_stored"] += len(hashes)
            elif t == "BlockRemoved":
                for h in f.get("block_hashes") or []:
                    index.discard(h)
            elif t == "AllBlocksCleared":
                index.clear()
            else:
                problems.append(f"{label}: unknown event {ev!r:.200}")
    return {"index": index, "shapes": shapes, "stored": stored, "counts": counts}


def check(args):
    os.makedirs(args.out, exist_ok=True)
    problems = []
    notes = []  # differences in text and chat prompts (tokenizer, template) without --strict-text
    vcap = Capture(args.vllm_events)
    scap = Capture(args.sim_events) if args.sim_events else None
    time.sleep(1.5)  # the subscriptions must reach the publishers before the first event
    cases = build_cases()
    rows = []
    expected_prompts = []  # token ids of the prompts since the last reset
    for case in cases:
        if case["kind"] == "reset":
            for label, base in (("vllm", args.vllm), ("sim", args.sim)):
                status, text = http("POST", base + "/reset_prefix_cache")
                if status != 200:
                    problems.append(f"{label}: POST /reset_prefix_cache answered {status} {text[:200]}")
            expected_prompts = []
            rows.append({"name": case["name"]})
            continue
        row = {"name": case["name"]}
        for label, base in (("vllm", args.vllm), ("sim", args.sim)):
            before = counters(base)
            answer = send(base, args.model, case)
            if "error" in answer:
                problems.append(f"{case['name']}: {label} failed: {answer['error']}")
                row[label] = answer
                continue
            after = settled_counters(base, before, answer["prompt_tokens"] or 0)
            answer["queries"] = int(after["queries"] - before["queries"])
            answer["hits"] = int(after["hits"] - before["hits"])
            row[label] = answer
        v, s = row.get("vllm", {}), row.get("sim", {})
        sink = problems if case["kind"] == "tokens" or args.strict_text else notes
        for key in ("prompt_tokens", "cached_tokens", "queries", "hits"):
            if v.get(key) != s.get(key):
                sink.append(f"{case['name']}: {key} vllm {v.get(key)} sim {s.get(key)}")
        if case.get("reference") is not None and v.get("cached_tokens") != case["reference"]:
            problems.append(f"{case['name']}: vllm cached {v.get('cached_tokens')}, REFERENCE.md says {case['reference']}")
        if case["kind"] == "tokens":
            expected_prompts.append(case["prompt"])
        rows.append(row)
    quiet_wait(vcap)
    if scap:
        quiet_wait(scap)
    vcap.close()
    vcap.save(os.path.join(args.out, "vllm-events.jsonl"))
    if scap:
        scap.close()
        scap.save(os.path.join(args.out, "sim-events.jsonl"))

    token_blocks = set()  # every full block of every token-id prompt sent
    for case in cases:
        if case["kind"] == "tokens":
            token_blocks.update(low64(d) for d in block_digests(case["prompt"]))
    expected = set()
    for p in expected_prompts:
        expected.update(low64(d) for d in block_digests(p))
    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump({"block_size": BLOCK_SIZE, "hash_seed": HASH_SEED, "index": sorted(str(h) for h in expected),
                   "token_blocks": sorted(str(h) for h in token_blocks), "strict_text": bool(args.strict_text),
                   "prompts": expected_prompts}, f)

    vres = analyse(decode_messages(os.path.join(args.out, "vllm-events.jsonl")), "vllm events", problems)
    if not vres["counts"]["batches"]:
        problems.append("vllm events: no batch captured")
    if vres["index"] != expected:
        problems.append(f"vllm events: index of {len(vres['index'])} blocks != the {len(expected)} blocks of the prompts "
                        f"(missing {len(expected - vres['index'])}, extra {len(vres['index'] - expected)})")
    report = {"cases": rows, "vllm_events": vres["counts"], "vllm_shapes": {k: sorted(map(list, v)) if k != "batch" else sorted(v) for k, v in vres["shapes"].items()}}
    if scap:
        sres = analyse(decode_messages(os.path.join(args.out, "sim-events.jsonl")), "sim events", problems)
        report["sim_events"] = sres["counts"]
        report["sim_shapes"] = {k: sorted(map(list, v)) if k != "batch" else sorted(v) for k, v in sres["shapes"].items()}
        if report["sim_shapes"] != report["vllm_shapes"]:
            problems.append(f"sim events: shapes {report['sim_shapes']} != vllm {report['vllm_shapes']}")
        # Without --strict-text, blocks of text and chat prompts (tokenizer-dependent) are left out.
        sim_stored, vllm_stored = sres["stored"], vres["stored"]
        if not args.strict_text:
            sim_stored, vllm_stored = sim_stored & token_blocks, vllm_stored & token_blocks
        if sim_stored != vllm_stored:
            problems.append(f"sim events: {len(sim_stored)} stored hashes != vllm {len(vllm_stored)} "
                            f"(only sim {len(sim_stored - vllm_stored)}, only vllm {len(vllm_stored - sim_stored)})")
        if sres["index"] != vres["index"]:
            problems.append("sim events: final index differs from vllm's")
    if vres["stored"] & token_blocks != token_blocks:
        problems.append(f"vllm events: {len(token_blocks - vres['stored'])} blocks of the token prompts never stored")
    # The simulator's own view of its cache, where it serves one: {"block_size", "hashes": [low64]}.
    status, text = http("GET", args.sim + "/debug/kv_blocks")
    report["sim_debug_kv_blocks_status"] = status
    if status == 200:
        sim_blocks = set(int(h) for h in json.loads(text).get("hashes", []))
        report["sim_debug_kv_blocks"] = len(sim_blocks)
        if sim_blocks != vres["index"]:
            problems.append(f"sim /debug/kv_blocks: {len(sim_blocks)} hashes != the {len(vres['index'])} of vllm's event index "
                            f"(only sim {len(sim_blocks - vres['index'])}, only vllm {len(vres['index'] - sim_blocks)})")
    elif args.sim_debug_blocks:
        problems.append(f"sim GET /debug/kv_blocks answered {status}")
    report["problems"] = problems
    report["notes"] = notes
    with open(os.path.join(args.out, "report.json"), "w") as f:
        json.dump(report, f, indent=1)

    print(f"{'case':42} {'vllm cached/prompt q/h':>26} {'sim cached/prompt q/h':>26}")
    for row in rows:
        if "vllm" not in row:
            print(f"{row['name']:42} {'(both reset)':>26}")
            continue
        cell = lambda a: f"{a.get('cached_tokens')}/{a.get('prompt_tokens')} +{a.get('queries')}/+{a.get('hits')}" if "error" not in a else "error"
        print(f"{row['name']:42} {cell(row['vllm']):>26} {cell(row.get('sim', {})):>26}")
    print(f"vllm events: {vres['counts']}; shapes {report['vllm_shapes']}")
    print(f"vllm index at the end: {len(vres['index'])} blocks, expected {len(expected)}")
    if scap:
        print(f"sim events: {report['sim_events']}")
    print(f"sim /debug/kv_blocks: {report.get('sim_debug_kv_blocks', report['sim_debug_kv_blocks_status'])}")
    for n in notes:
        print("DIFFERS (text/chat, not required): " + n)
    for p in problems:
        print("MISMATCH: " + p)
    print("conformance: " + ("FAILED" if problems else "passed") + f" ({len(problems)} mismatches)")
    return 1 if problems else 0


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make-model")
    m.add_argument("--dir", required=True)
    m.add_argument("--tokenizer-dir", required=True)
    m.add_argument("--template", required=True)
    c = sub.add_parser("check")
    c.add_argument("--vllm", required=True)
    c.add_argument("--vllm-events", required=True)
    c.add_argument("--sim", required=True)
    c.add_argument("--sim-events")
    c.add_argument("--sim-debug-blocks", action="store_true")
    c.add_argument("--strict-text", action="store_true", help="require text and chat prompts to match too")
    c.add_argument("--model", required=True)
    c.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.command == "make-model":
        make_model(args)
        return 0
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
