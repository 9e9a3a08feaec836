#!/usr/bin/env python3
"""Closed-loop load for scripts/bench/soak.sh: CONCURRENCY threads, split evenly between the
targets, each sending chat completions (every other one streamed) on a keep-alive
connection until DURATION ends. Every request is counted once as sent and once as one of:
  ok          2xx with a complete body (JSON with choices, or SSE ending in [DONE])
  error       4xx/5xx status
  sse_error   2xx SSE that carried an error event
  malformed   2xx with a body that does not parse
  cut         connection closed or reset, or fewer bytes than announced
  timeout     no answer within --timeout seconds
answered = ok + error + sse_error + malformed; failed = cut + timeout. Standard library only."""
import argparse, http.client, json, socket, threading, time
from collections import Counter

MODEL = "meta-llama/Llama-3.2-3B-Instruct"
KINDS = ["ok", "error", "sse_error", "malformed", "cut", "timeout"]


def body(i, sessions=48):
    s = i % sessions
    system = f"Session group {s % 8} keeps these standing instructions for every answer. " * 30
    b = {"model": MODEL, "max_tokens": 16 + i % 32, "temperature": 0,
         "messages": [{"role": "system", "content": system}, {"role": "user", "content": f"question {i} of session {s}"}]}
    if i % 2:
        b["stream"] = True
        b["stream_options"] = {"include_usage": True}
    return json.dumps(b).encode(), f"soak-{s}"


def classify(status, ctype, data):
    if status >= 400:
        return "error"
    if not 200 <= status < 300:
        return "malformed"
    text = data.decode("utf-8", "replace")
    if ctype.startswith("text/event-stream"):
        done, bad = False, False
        for line in text.split("\n"):
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                done = True
                continue
            try:
                obj = json.loads(payload)
            except ValueError:
                bad = True
                continue
            if isinstance(obj, dict) and "error" in obj:
                return "sse_error"
        return "ok" if done and not bad else "malformed"
    try:
        obj = json.loads(text)
    except ValueError:
        return "malformed"
    return "ok" if isinstance(obj, dict) and "choices" in obj else "malformed"


def worker(name, host, port, deadline, timeout, counts, lock, seq):
    conn = None
    while time.monotonic() < deadline:
        with lock:
            i = next(seq)
            counts[name]["sent"] += 1
        payload, session = body(i)
        kind = None
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
            conn.request("POST", "/v1/chat/completions", payload,
                         {"Content-Type": "application/json", "x-session-id": session})
            resp = conn.getresponse()
            data = resp.read()
            kind = classify(resp.status, resp.getheader("content-type", ""), data)
            if resp.will_close:
                conn.close()
                conn = None
        except (socket.timeout, TimeoutError):
            kind = "timeout"
        except (http.client.HTTPException, OSError):
            kind = "cut"
        if kind in ("timeout", "cut") and conn is not None:
            conn.close()
            conn = None
        with lock:
            counts[name][kind] += 1
    if conn is not None:
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--target", action="append", required=True, help="NAME=http://host:port")
    a = ap.parse_args()
    targets = [t.split("=", 1) for t in a.target]
    counts = {n: Counter() for n, _ in targets}
    lock = threading.Lock()
    seq = iter(range(1 << 62))
    deadline = time.monotonic() + a.duration
    threads = []
    for k in range(a.concurrency):
        name, url = targets[k % len(targets)]
        host, port = url.split("//", 1)[1].rsplit(":", 1)
        t = threading.Thread(target=worker, args=(name, host, int(port), deadline, a.timeout, counts, lock, seq), daemon=True)
        t.start()
        threads.append(t)
    started = time.monotonic()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    total = Counter()
    for name, _ in targets:
        total.update(counts[name])
    for name, c in [(n, counts[n]) for n, _ in targets] + [("total", total)]:
        answered = sum(c[k] for k in ("ok", "error", "sse_error", "malformed"))
        failed = c["cut"] + c["timeout"]
        print(f"{name:<8} sent {c['sent']} answered {answered} failed {failed} | "
              + " ".join(f"{k} {c[k]}" for k in KINDS)
              + f" | {c['sent'] / elapsed:.1f} req/s")


if __name__ == "__main__":
    main()
