#!/usr/bin/env python3
"""Checks precise prefix-cache routing in front of real vLLM engines: each chat session's turns
go to the engine whose own KV events say it holds the session's blocks.

  precise_sessions.py --url FRONT_DOOR --engines URL,URL --events tcp://H:P,tcp://H:P
                      --model NAME --out FILE [--sessions 2] [--primed 2] [--turns 4]
                      [--explain-secret S] [--front-metrics URL]

(run with a Python that has pyzmq, msgpack and cbor2; the engines serve with block size 32,
sha256_cbor hashes, PYTHONHASHSEED=0 and VLLM_SERVER_DEV_MODE=1.)

It follows every engine's KV events (the truth about what each engine holds, independent of
the front door), resets the engines' prefix caches, then runs SESSIONS chat sessions, each
with its own long system prompt and a growing history, one turn of every session at a time
(sent together). PRIMED more sessions send their first turn straight to an engine (session
i of them to engine i), bypassing the front door, which then learns where they are from the
engines' events alone. Every prompt is tokenized by the engine itself (POST /tokenize with the
messages) and hashed as vLLM does (sha256_cbor chain from NONE_HASH = H("0")). Checked:

  - every turn after a session's first lands on an engine holding the most leading blocks
    of its prompt (by the events, before the turn was sent), and that is more than none;
  - every session stays on one engine; a primed session on the engine it was primed on;
  - vLLM's cached_tokens agree with the events: min(held blocks, (prompt - 1) // 32) * 32;
  - after each turn the serving engine's events hold every full block of the prompt;
  - with --explain-secret (kvroute gateway): the x-kvroute-decision header's prefix_blocks
    H/T equals the events' count and the prompt's full blocks;
  - with --front-metrics: kvroute_precise_hashing_mismatch is 0 for every engine and field.

Whether the sessions landed on different engines is reported, not required (the load
scorers may place two new sessions together). Writes a JSON report to FILE; exits 1 on any
failed check.
"""

import argparse
import json
import os
import random
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vllm_conformance import BLOCK_SIZE, block_digests, event_type, low64  # noqa: E402


def post(url, body, headers=None, timeout=120):
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST", headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers.items()), r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers.items()), e.read().decode("utf-8", "replace")


def header(headers, name):
    for k, v in headers.items():
        if k.lower() == name:
            return v
    return None


class EventIndex:
    """Every engine's block index, built from its KV events as they arrive (SUB sockets)."""

    def __init__(self, names, endpoints):
        import msgpack
        import zmq

        self.msgpack, self.zmq = msgpack, zmq
        self.names = names
        self.ctx = zmq.Context.instance()
        self.socks = {}
        for name, endpoint in zip(names, endpoints):
            s = self.ctx.socket(zmq.SUB)
            s.setsockopt(zmq.SUBSCRIBE, b"")
            s.setsockopt(zmq.LINGER, 0)
            s.connect(endpoint)
            self.socks[s] = name
        self.lock = threading.Lock()
        self.index = {n: set() for n in names}
        self.batches = {n: 0 for n in names}
        self.problems = []
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    @staticmethod
    def as_int(h):
        return int.from_bytes(h[-8:], "big") if isinstance(h, (bytes, bytearray)) else h

    def run(self):
        poller = self.zmq.Poller()
        for s in self.socks:
            poller.register(s, self.zmq.POLLIN)
        while not self.stop_flag.is_set():
            for s, _ in poller.poll(100):
                frames = s.recv_multipart()
                self.apply(self.socks[s], frames)

    def apply(self, name, frames):
        try:
            batch = self.msgpack.unpackb(frames[-1], raw=False, strict_map_key=False)
        except Exception as e:  # a payload that does not decode is a finding, not a crash
            self.problems.append(f"{name}: undecodable payload ({e})")
            return
        events = batch[1] if isinstance(batch, list) else (batch or {}).get("events", [])
        with self.lock:
            self.batches[name] += 1
            index = self.index[name]
            for ev in events:
                t = event_type(ev)
                f = ev if isinstance(ev, dict) else {}
                if t == "BlockStored":
                    index.update(self.as_int(h) for h in f.get("block_hashes") or [])
                elif t == "BlockRemoved":
                    index.difference_update(self.as_int(h) for h in f.get("block_hashes") or [])
                elif t == "AllBlocksCleared":
                    index.clear()

    def held(self, hashes):
        """Per engine, how many leading blocks of `hashes` its events say it holds."""
        with self.lock:
            out = {}
            for name, index in self.index.items():
                n = 0
                while n < len(hashes) and hashes[n] in index:
                    n += 1
                out[name] = n
            return out

    def wait_for(self, name, hashes, limit=10.0):
        deadline = time.time() + limit
        while time.time() < deadline:
            with self.lock:
                if all(h in self.index[name] for h in hashes):
                    return True
            time.sleep(0.05)
        return False

    def wait_quiet(self, seconds=0.5, limit=10.0):
        deadline = time.time() + limit
        last, since = None, time.time()
        while time.time() < deadline:
            with self.lock:
                now = sum(self.batches.values())
            if now != last:
                last, since = now, time.time()
            elif time.time() - since >= seconds:
                return
            time.sleep(0.05)

    def close(self):
        self.stop_flag.set()
        self.thread.join()
        for s in self.socks:
            s.close()


def system_prompt(k, words=500):
    """A long, distinct system prompt: session k's first words differ from every other's,
    so even the first block (template header + the prompt's start) is its own."""
    rng = random.Random(1000 + k)
    vocab = ["ledger", "harbor", "quartz", "meadow", "signal", "copper", "lantern", "orbit", "cedar", "falcon",
             "river", "basalt", "violet", "engine", "summit", "thistle", "marble", "canyon", "ember", "willow"]
    body = " ".join(rng.choice(vocab) + str(rng.randrange(100)) for _ in range(words))
    return f"Session {k} briefing, tenant {k * 7919}: you are assistant number {k}. {body}"


def decision(value):
    """prefix_blocks H/T and per endpoint the precise score from an x-kvroute-decision header."""
    out = {"prefix_blocks": None, "precise": {}}
    for part in (p.strip() for p in (value or "").split(";")):
        if part.startswith("prefix_blocks="):
            h, _, t = part.split("=", 1)[1].partition("/")
            out["prefix_blocks"] = (int(h), int(t))
        elif "=" in part and "[" in part and "precise-prefix-cache-scorer:" in part:
            endpoint = part.split("=", 1)[0]
            score = part.split("precise-prefix-cache-scorer:", 1)[1].split("x", 1)[0]
            out["precise"][endpoint] = float(score)
    return out


def hashing_mismatches(url):
    req = urllib.request.Request(url)
    with urllib.request.urlopen(req, timeout=10) as r:
        text = r.read().decode()
    bad = []
    for line in text.splitlines():
        if line.startswith("kvroute_precise_hashing_mismatch{") and float(line.rsplit(" ", 1)[1]) != 0:
            bad.append(line)
    seen = any(line.startswith("kvroute_precise_hashing_mismatch{") for line in text.splitlines())
    return seen, bad


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="the front door (kvroute gateway or Envoy)")
    p.add_argument("--engines", required=True, help="engine base URLs, comma-separated")
    p.add_argument("--events", required=True, help="the engines' KV event publishers, same order")
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--sessions", type=int, default=2, help="sessions entirely through the front door")
    p.add_argument("--primed", type=int, default=0, help="more sessions whose first turn goes straight to an engine")
    p.add_argument("--turns", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=8)
    p.add_argument("--explain-secret")
    p.add_argument("--front-metrics")
    args = p.parse_args()

    engines = [e.strip().rstrip("/") for e in args.engines.split(",") if e.strip()]
    names = [e.split("://", 1)[-1] for e in engines]
    events = EventIndex(names, [e.strip() for e in args.events.split(",")])
    problems = []
    turns = []
    placement = {}
    try:
        time.sleep(0.5)  # ZMQ drops what a subscriber not yet joined would see
        for e in engines:
            status, _, text = post(e + "/reset_prefix_cache", None)
            if status != 200:
                problems.append(f"{e}/reset_prefix_cache answered {status} {text[:200]} (VLLM_SERVER_DEV_MODE=1?)")
        events.wait_quiet()
        if any(events.index.values()):
            problems.append("the engines' events still hold blocks after the reset")

        total = args.sessions + args.primed
        primed = {args.sessions + i: names[i % len(names)] for i in range(args.primed)}
        histories = [[{"role": "system", "content": system_prompt(k)}] for k in range(total)]
        served = {k: [] for k in range(total)}
        for t in range(args.turns):
            plans = []
            for k in range(total):
                histories[k].append({"role": "user", "content": f"Session {k}, question {t}: what comes next?"})
                status, _, text = post(engines[0] + "/tokenize", {"model": args.model, "messages": histories[k], "add_generation_prompt": True})
                if status != 200:
                    raise RuntimeError(f"/tokenize answered {status}: {text[:200]}")
                tokens = json.loads(text)["tokens"]
                hashes = [low64(d) for d in block_digests(tokens)]
                direct = primed.get(k) if t == 0 else None
                plans.append({"session": k, "turn": t, "tokens": len(tokens), "hashes": hashes, "held": events.held(hashes), "direct": direct})
            results = [None] * len(plans)

            def send(i, plan):
                headers = {"x-session-id": f"precise-session-{plan['session']}"}
                if args.explain_secret:
                    headers["x-kvroute-explain"] = args.explain_secret
                body = {"model": args.model, "messages": histories[plan["session"]], "max_tokens": args.max_tokens, "temperature": 0}
                if plan["direct"]:
                    status, h, text = post(f"http://{plan['direct']}/v1/chat/completions", body)
                    results[i] = (status, dict(h, **{"x-upstream-host": plan["direct"]}), text)
                else:
                    results[i] = post(args.url.rstrip("/") + "/v1/chat/completions", body, headers)

            threads = [threading.Thread(target=send, args=(i, plan)) for i, plan in enumerate(plans)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()

            for plan, (status, headers, text) in zip(plans, results):
                k = plan["session"]
                label = f"session {k} turn {t}"
                if status != 200:
                    problems.append(f"{label}: HTTP {status} {text[:200]}")
                    continue
                answer = json.loads(text)
                histories[k].append({"role": "assistant", "content": answer["choices"][0]["message"]["content"] or ""})
                engine = header(headers, "x-upstream-host")
                held = plan["held"]
                best = max(held.values())
                cached = ((answer.get("usage") or {}).get("prompt_tokens_details") or {}).get("cached_tokens")
                row = {"session": k, "turn": t, "engine": engine, "direct": bool(plan["direct"]), "prompt_tokens": plan["tokens"], "blocks": len(plan["hashes"]),
                       "held_before": held, "cached_tokens": cached}
                if engine not in held:
                    problems.append(f"{label}: served by {engine!r}, not one of {names} (x-upstream-host)")
                    turns.append(row)
                    continue
                served[k].append(engine)
                if t > 0:
                    if best == 0:
                        problems.append(f"{label}: no engine's events hold any of its {len(plan['hashes'])} blocks")
                    elif held[engine] != best:
                        problems.append(f"{label}: went to {engine} holding {held[engine]} blocks; the events show {best} on another engine ({held})")
                expected_cached = min(held[engine], (plan["tokens"] - 1) // BLOCK_SIZE) * BLOCK_SIZE
                if cached != expected_cached:
                    problems.append(f"{label}: {engine} reported cached_tokens {cached}; its events held {held[engine]} blocks (expected {expected_cached})")
                if args.explain_secret and not plan["direct"]:
                    d = decision(header(headers, "x-kvroute-decision"))
                    row["decision"] = d
                    if d["prefix_blocks"] != (best, len(plan["hashes"])):
                        problems.append(f"{label}: the picker saw prefix_blocks {d['prefix_blocks']}, the events {best}/{len(plan['hashes'])}")
                    if t > 0 and d["precise"] and max(d["precise"], key=d["precise"].get) != engine:
                        problems.append(f"{label}: the picker's best precise score {d['precise']} is not the serving engine {engine}")
                if not events.wait_for(engine, plan["hashes"]):
                    problems.append(f"{label}: {engine}'s events never held all {len(plan['hashes'])} blocks of the prompt it served")
                turns.append(row)
                note = f" decision {row['decision']['prefix_blocks']}" if "decision" in row else " (sent straight to the engine)" if plan["direct"] else ""
                print(f"[precise-sessions] {label}: {engine}, {plan['tokens']} tokens, events held {held} blocks before, cached {cached}{note}")
            events.wait_quiet(seconds=0.3)
            time.sleep(0.3)  # the front door's own subscriber follows the same streams

        for k, engs in served.items():
            if len(set(engs)) != 1:
                problems.append(f"session {k} moved between engines: {engs}")
            if engs:
                placement[k] = engs[0]
            if k in primed and engs and set(engs) != {primed[k]}:
                problems.append(f"session {k}, primed on {primed[k]}, went to {engs}")
        for k in range(total):
            if k not in placement:
                continue
            status, _, text = post(engines[0] + "/tokenize", {"model": args.model, "messages": histories[k][:1], "add_generation_prompt": False})
            tokens = json.loads(text)["tokens"] if status == 200 else []
            hashes = [low64(d) for d in block_digests(tokens)]
            held = events.held(hashes)
            if held[placement[k]] != len(hashes) or not hashes:
                problems.append(f"session {k}: its engine {placement[k]} holds {held[placement[k]]} of the system prompt's {len(hashes)} blocks")
            others = [n for n in names if n != placement[k] and held[n] > 0]
            if others:
                problems.append(f"session {k}'s system prompt blocks are also on {others}")
        natural = {k: v for k, v in placement.items() if k not in primed}
        print(f"[precise-sessions] placement {placement} (primed {sorted(primed)}): the {len(natural)} unprimed session(s) on {len(set(natural.values()))} engine(s)")
        if args.front_metrics:
            seen, bad = hashing_mismatches(args.front_metrics)
            if not seen:
                problems.append(f"{args.front_metrics} exports no kvroute_precise_hashing_mismatch (precise routing off?)")
            problems.extend(f"front door reports {line}" for line in bad)
        problems.extend(events.problems)
    finally:
        events.close()

    report = {"url": args.url, "sessions": args.sessions, "primed": args.primed, "turns": args.turns, "placement": {str(k): v for k, v in placement.items()},
              "distinct_engines": len(set(placement.values())), "rows": turns,
              "problems": problems, "passed": not problems}
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    for line in problems:
        print(f"[precise-sessions] FAILED: {line}", file=sys.stderr)
    print(f"[precise-sessions] {'PASS' if not problems else 'FAIL'}: {len(turns)} turns, report {args.out}")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
