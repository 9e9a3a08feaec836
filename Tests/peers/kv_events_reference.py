#!/usr/bin/env python3
"""vLLM KV event batches and their ZMQ transport, built with PyPI `msgpack` and `pyzmq`
independently of kvroute, to check kvroute's decoder, encoder, publisher, subscriber and
replay against.

Layouts follow vLLM's vllm/distributed/kv_events.py (msgspec structs, omit_defaults: a
field still at its default None is left out of a map, trailing ones out of an array):
  vllm032     batch [ts, [events], dp_rank], events maps with "type" first (vLLM 0.32.0)
  named       batch {"ts", "events", "data_parallel_rank"}, events maps
  positional  batch [ts, [events], dp_rank], events ["BlockStored", hashes, ...]

Batches are exchanged with the Swift tests as a neutral JSON description:
  {"ts": float, "dp": int|null, "events": [{"type": ..., fields...}]}
with hashes written "u:<decimal>", "i:<-decimal>" or "b:<hex>" and extra-key items
"s:<text>", "i:<decimal>", "b:<hex>".

Commands (all print one JSON document, or JSON lines for `pub`):
  build --count N --seed S            batches in every layout: descriptions + payload hex
  decode                              stdin {"payloads": [hex]} -> descriptions + shapes
  pub --endpoint E [--bind] --topic T --count K --form F --seconds S
  sub --endpoint E [--bind] --topic T --count N --seconds S
  replay --endpoint E --start N --seconds S              (a DEALER client)
  replay-server --endpoint E --count K --form F --seconds S   (a ROUTER like vLLM's)
"""

import argparse
import json
import random
import signal
import sys
import time

import msgpack
import zmq

STORED_FIELDS = [
    "block_hashes", "parent_block_hash", "token_ids", "block_size", "lora_id", "medium", "lora_name",
    "extra_keys", "group_idx", "kv_cache_spec_kind", "kv_cache_spec_sliding_window",
]
STORED_REQUIRED = 7  # fields without a default in vLLM's BlockStored
REMOVED_FIELDS = ["block_hashes", "medium", "group_idx"]
REMOVED_REQUIRED = 2
END_SEQ = (-1).to_bytes(8, "big", signed=True)


# ---------- neutral description <-> Python values ----------

def hash_value(text):
    kind, _, rest = text.partition(":")
    if kind == "u":
        return int(rest)
    if kind == "i":
        return int(rest)
    return bytes.fromhex(rest)


def hash_text(value):
    if isinstance(value, (bytes, bytearray)):
        return "b:" + bytes(value).hex()
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"hash of type {type(value).__name__}")
    return ("i:" if value < 0 else "u:") + str(value)


def key_value(text):
    kind, _, rest = text.partition(":")
    return {"s": lambda r: r, "i": int, "b": bytes.fromhex}[kind](rest)


def key_text(value):
    if isinstance(value, str):
        return "s:" + value
    if isinstance(value, (bytes, bytearray)):
        return "b:" + bytes(value).hex()
    return "i:" + str(value)


def event_fields(desc):
    """The event's field values in vLLM order, None where absent."""
    names = STORED_FIELDS if desc["type"] == "BlockStored" else REMOVED_FIELDS if desc["type"] == "BlockRemoved" else []
    values = []
    for name in names:
        v = desc.get(name)
        if v is not None:
            if name == "block_hashes":
                v = [hash_value(h) for h in v]
            elif name == "parent_block_hash":
                v = hash_value(v)
            elif name == "extra_keys":
                v = [None if e is None else [key_value(k) for k in e] for e in v]
        values.append((name, v))
    return values


def encode_event(desc, layout):
    required = STORED_REQUIRED if desc["type"] == "BlockStored" else REMOVED_REQUIRED if desc["type"] == "BlockRemoved" else 0
    fields = event_fields(desc)
    if desc["type"] not in ("BlockStored", "BlockRemoved", "AllBlocksCleared"):
        # An event type from a newer vLLM: whatever fields it has, by name or position.
        fields = [(k, v) for k, v in desc.items() if k != "type"]
        required = len(fields)
    if layout == "named":
        out = {"type": desc["type"]}
        for i, (name, v) in enumerate(fields):
            if v is not None or i < required:
                out[name] = v
        return out
    kept = len(fields)
    while kept > required and fields[kept - 1][1] is None:
        kept -= 1
    return [desc["type"]] + [v for _, v in fields[:kept]]


def encode_batch(desc, form):
    batch_layout, event_layout = {
        "vllm032": ("positional", "named"), "named": ("named", "named"), "positional": ("positional", "positional"),
    }[form]
    events = [encode_event(e, event_layout) for e in desc["events"]]
    if batch_layout == "named":
        batch = {"ts": desc["ts"], "events": events}
        if desc["dp"] is not None:
            batch["data_parallel_rank"] = desc["dp"]
    else:
        batch = [desc["ts"], events] + ([desc["dp"]] if desc["dp"] is not None else [])
    return msgpack.packb(batch, use_bin_type=True)


def describe_event(value):
    if isinstance(value, dict):
        kind = value["type"]
        get = value.get
    else:
        kind = value[0]
        names = STORED_FIELDS if kind == "BlockStored" else REMOVED_FIELDS if kind == "BlockRemoved" else []
        positional = dict(zip(names, value[1:]))
        get = positional.get
    desc = {"type": kind}
    if kind not in ("BlockStored", "BlockRemoved"):
        return desc
    for name in STORED_FIELDS if kind == "BlockStored" else REMOVED_FIELDS:
        v = get(name)
        if v is None:
            desc[name] = None
        elif name == "block_hashes":
            desc[name] = [hash_text(h) for h in v]
        elif name == "parent_block_hash":
            desc[name] = hash_text(v)
        elif name == "extra_keys":
            desc[name] = [None if e is None else [key_text(k) for k in e] for e in v]
        else:
            desc[name] = v
    return desc


def describe_batch(payload):
    value = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    if isinstance(value, dict):
        ts, events, dp = value["ts"], value["events"], value.get("data_parallel_rank")
        batch_shape = "map"
    else:
        ts, events = value[0], value[1]
        dp = value[2] if len(value) > 2 else None
        batch_shape = "array"
    shapes = [("map:" + ",".join(e.keys())) if isinstance(e, dict) else f"array:{len(e)}" for e in events]
    return {"ts": float(ts), "dp": dp, "events": [describe_event(e) for e in events]}, batch_shape, shapes


# ---------- deterministic batches ----------

def random_hash(rng):
    r = rng.random()
    if r < 0.6:
        return "u:" + str(rng.choice([0, 1, 2**63 - 1, 2**63, 2**64 - 1, rng.getrandbits(64)]))
    if r < 0.75:
        return "i:" + str(-rng.randint(1, 2**63))
    return "b:" + rng.randbytes(32).hex()


def random_event(rng):
    r = rng.random()
    if r < 0.6:
        blocks = rng.randint(0, 4)
        block_size = rng.choice([16, 32])
        lora = rng.random() < 0.3
        salt = rng.random() < 0.3
        with_extra = rng.random() < 0.7
        ev = {
            "type": "BlockStored",
            "block_hashes": [random_hash(rng) for _ in range(blocks)],
            "parent_block_hash": None if rng.random() < 0.5 else random_hash(rng),
            "token_ids": [rng.choice([0, 1, 127, 128, 255, 256, 65535, 65536, 128255, 2**32 - 1, rng.randint(0, 200000)])
                          for _ in range(blocks * block_size)],
            "block_size": block_size,
            "lora_id": rng.randint(1, 8) if lora else None,
            "medium": rng.choice(["GPU", "CPU", None]),
            "lora_name": "adapter-" + str(rng.randint(0, 9)) if lora else None,
            "extra_keys": None,
            "group_idx": rng.choice([None, 0, 1]),
            "kv_cache_spec_kind": rng.choice([None, "full_attention", "sliding_window"]),
            "kv_cache_spec_sliding_window": rng.choice([None, None, 4096]),
        }
        if with_extra:
            keys = []
            for i in range(blocks):
                k = (["s:adapter"] if lora else []) + (["s:salt-ü"] if salt and i == 0 else [])
                if rng.random() < 0.1:
                    k += ["b:" + rng.randbytes(4).hex(), "i:" + str(rng.randint(-5, 5))]
                keys.append(k or None)
            ev["extra_keys"] = keys
        return ev
    if r < 0.85:
        return {
            "type": "BlockRemoved",
            "block_hashes": [random_hash(rng) for _ in range(rng.randint(0, 5))],
            "medium": rng.choice(["GPU", "CPU", None]),
            "group_idx": rng.choice([None, 0, 2]),
        }
    if r < 0.95:
        return {"type": "AllBlocksCleared"}
    return {"type": "BlockMoved", "block_hashes": [1, 2], "to": "CPU"}


def random_batch(rng):
    return {
        "ts": rng.choice([0.0, 1.5, time.time(), rng.random() * 1e9]),
        "dp": rng.choice([0, 0, 1, 7, None]),
        "events": [random_event(rng) for _ in range(rng.randint(0, 6))],
    }


def neutral(desc):
    """What a decoder that knows the three event types should report."""
    out = dict(desc)
    out["events"] = [e for e in desc["events"] if e["type"] in ("BlockStored", "BlockRemoved", "AllBlocksCleared")]
    out["skipped"] = len(desc["events"]) - len(out["events"])
    return out


# ---------- commands ----------

def cmd_build(args):
    rng = random.Random(args.seed)
    cases = []
    for i in range(args.count):
        desc = random_batch(rng)
        form = ["vllm032", "named", "positional"][i % 3]
        cases.append({"form": form, "batch": neutral(desc), "payload": encode_batch(desc, form).hex()})
    json.dump({"cases": cases}, sys.stdout)


def cmd_decode(args):
    request = json.load(sys.stdin)
    out = []
    for payload in request["payloads"]:
        desc, batch_shape, shapes = describe_batch(bytes.fromhex(payload))
        out.append({"batch": desc, "batch_shape": batch_shape, "event_shapes": shapes})
    json.dump({"batches": out}, sys.stdout)


def endpoint_socket(ctx, kind, args):
    s = ctx.socket(kind)
    s.setsockopt(zmq.LINGER, 0)
    if args.bind:
        s.bind(args.endpoint)
    else:
        s.connect(args.endpoint)
    return s


def cmd_pub(args):
    rng = random.Random(args.seed)
    batches = [random_batch(rng) for _ in range(args.count)]
    print(json.dumps({"batches": [neutral(b) for b in batches]}), flush=True)
    ctx = zmq.Context()
    pub = endpoint_socket(ctx, zmq.PUB, args)
    topic = args.topic.encode()
    deadline = time.time() + args.seconds
    seq = 0
    while time.time() < deadline:
        # Noise the subscriber must not deliver: another topic, and a seq that is not 8 bytes.
        pub.send_multipart([b"other" + topic, seq.to_bytes(8, "big"), b"\xc0"])
        pub.send_multipart([topic, b"\x00\x01", b"\xc0"])
        pub.send_multipart([topic, seq.to_bytes(8, "big"), encode_batch(batches[seq % args.count], args.form)])
        seq += 1
        time.sleep(0.02)
    pub.close()


def cmd_sub(args):
    ctx = zmq.Context()
    sub = endpoint_socket(ctx, zmq.SUB, args)
    sub.setsockopt(zmq.SUBSCRIBE, args.topic.encode())
    deadline = time.time() + args.seconds
    messages = []
    while len(messages) < args.count and time.time() < deadline:
        if not sub.poll(100):
            continue
        frames = sub.recv_multipart()
        if len(frames) != 3:
            print(f"expected 3 frames, got {len(frames)}", file=sys.stderr)
            sys.exit(2)
        topic, seq, payload = frames
        desc, batch_shape, shapes = describe_batch(payload)
        messages.append({"topic": topic.decode(), "seq": int.from_bytes(seq, "big"), "batch": desc,
                         "batch_shape": batch_shape, "event_shapes": shapes})
    json.dump({"messages": messages}, sys.stdout)
    sys.exit(0 if len(messages) == args.count else 1)


def cmd_replay(args):
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(args.endpoint)
    dealer.send_multipart([b"", args.start.to_bytes(8, "big")])
    deadline = time.time() + args.seconds
    messages = []
    ended = False
    while time.time() < deadline:
        if not dealer.poll(100):
            continue
        empty, seq, payload = dealer.recv_multipart()
        if seq == END_SEQ and payload == b"":
            ended = True
            break
        desc, _, _ = describe_batch(payload)
        messages.append({"seq": int.from_bytes(seq, "big"), "batch": desc, "empty_first": empty == b""})
    json.dump({"messages": messages, "ended": ended}, sys.stdout)
    sys.exit(0 if ended else 1)


def cmd_replay_server(args):
    rng = random.Random(args.seed)
    batches = [random_batch(rng) for _ in range(args.count)]
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    print(json.dumps({"endpoint": f"tcp://127.0.0.1:{port}", "batches": [neutral(b) for b in batches]}), flush=True)
    buffer = [(seq, encode_batch(b, args.form)) for seq, b in enumerate(batches)]
    deadline = time.time() + args.seconds
    while time.time() < deadline:
        if not router.poll(100):
            continue
        frame = router.recv_multipart()
        if len(frame) != 3:
            continue
        client_id, _, start_bytes = frame
        start = int.from_bytes(start_bytes, "big")
        for seq, payload in buffer:
            if seq >= start:
                router.send_multipart((client_id, b"", seq.to_bytes(8, "big"), payload))
        router.send_multipart((client_id, b"", END_SEQ, b""))


def main():
    # A parent may start us with SIGTERM blocked (threads that spawn inherit their mask):
    # unblock it so stopping a background peer is immediate.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("--count", type=int, default=30)
    b.add_argument("--seed", type=int, default=1)
    sub.add_parser("decode")
    for name in ("pub", "sub", "replay", "replay-server"):
        p = sub.add_parser(name)
        p.add_argument("--endpoint", default="")
        p.add_argument("--bind", action="store_true")
        p.add_argument("--topic", default="")
        p.add_argument("--count", type=int, default=5)
        p.add_argument("--form", default="vllm032", choices=["vllm032", "named", "positional"])
        p.add_argument("--seconds", type=float, default=20)
        p.add_argument("--seed", type=int, default=2)
        p.add_argument("--start", type=int, default=0)
    args = parser.parse_args()
    {"build": cmd_build, "decode": cmd_decode, "pub": cmd_pub, "sub": cmd_sub, "replay": cmd_replay,
     "replay-server": cmd_replay_server}[args.command](args)


if __name__ == "__main__":
    main()
