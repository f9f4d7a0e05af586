#!/usr/bin/env python3
"""velollm's own limits, measured against its loopback server (issue 7; figures in docs/performance.md).

    python3 scripts/limits.py [--velollm target/release/velollm] [--out target/perf] [--scale 1]

Four measurements, each against `velollm selfcheck` (in-process) or `velollm selfcheck --serve` (its own
process), with no model and no network:

1. accuracy at 1,000 concurrent streams: TTFT and ITL errors against the server's own write stamps
   (`velollm selfcheck --levels 1000`), p99 under 0.5 ms is the target;
2. 10,000 concurrent streams: the client's peak RSS (from /proc, sampled) holding 10,000 open streams,
   against 1,000 streams: memory per stream, bounded;
3. memory as finished requests accumulate: the client's RSS sampled while it runs flat out for a minute
   (hundreds of thousands of requests): flat once the step's sample cap is reached;
4. 100,000-token responses, from a server writing every token on its own and from one writing 64 at a time:
   the streaming rate over each tenth of a response (with 64 tokens per write, where the client sets the rate,
   the last tenth must not fall below 0.75× the median).

The Markdown table goes to stdout and OUT/limits.md, every figure to OUT/limits.json.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    sys.exit(f"limits: the loopback server did not listen on port {port}")


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Server:
    """`velollm selfcheck --serve` as its own process."""

    def __init__(self, velollm: str, *args: str):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [velollm, "selfcheck", "--serve", f"127.0.0.1:{self.port}", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def bench(velollm: str, url: str, args: list, sample_every: float = 0.5):
    """Run `velollm bench`; return (result document, RSS samples [(seconds, KiB)], wall seconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.json"
        cmd = [velollm, "bench", "--url", url, "--backend", "openai-chat", "--no-progress", "--no-selfcheck"]
        cmd += [*args, "-o", str(out)]
        env = dict(os.environ, VELOLLM_NO_HISTORY="1")
        start = time.time()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        samples = []
        while proc.poll() is None:
            samples.append((time.time() - start, rss_kib(proc.pid)))
            time.sleep(sample_every)
        wall = time.time() - start
        err = proc.stderr.read().decode(errors="replace")
        if proc.returncode != 0:
            sys.exit(f"limits: velollm bench {' '.join(args)} failed ({proc.returncode}):\n{err}")
        doc = json.loads(out.read_text())
        records = None
        if "--records" in args:
            records = Path(args[args.index("--records") + 1])
        return doc, samples, wall, records


def accuracy(velollm: str, scale: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "check.json"
        duration = f"{max(3, int(10 * scale))}s"
        cmd = [velollm, "selfcheck", "--levels", "1000", "--ceiling", "0", "--ttft", "50ms", "--itl", "50ms"]
        cmd += ["--tokens", "64", "--duration", duration, "--json", str(out)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        level = json.loads(out.read_text())["levels"][0]
    return {
        "streams": 1000,
        "chunk_rate": level["chunk_rate"],
        "requests": level["requests"],
        "ttft_error_ms": level["added_request_ms"],
        "chunk_lag_ms": level["added_chunk_ms"],
        "itl_error_ms": level["itl_error_ms"],
    }


def streams(velollm: str, scale: float) -> dict:
    out = {}
    # Each stream: 16 tokens, 500 ms apart (8 s per request): 10,000 streams make 20,000 chunks/s.
    with Server(velollm, "--ttft", "500ms", "--itl", "500ms", "--tokens", "16") as server:
        for n in (1000, 10000):
            duration = f"{max(10, int(30 * scale))}s"
            doc, samples, wall, _ = bench(
                velollm, server.url, ["--prompt-tokens", "128", "--max-tokens", "16", "-c", str(n), "-d", duration]
            )
            step = doc["steps"][0]
            out[n] = {
                "peak_rss_mib": max(kib for _, kib in samples) / 1024,
                "requests": step["requests"],
                "succeeded": step["succeeded"],
                "errors": {k: v["count"] for k, v in step["errors"].items()},
                "ttft_p50_ms": step["metrics"]["ttft_ms"]["p50"] if step["metrics"].get("ttft_ms") else None,
                "ttft_p99_ms": step["metrics"]["ttft_ms"]["p99"] if step["metrics"].get("ttft_ms") else None,
            }
    per_stream = (out[10000]["peak_rss_mib"] - out[1000]["peak_rss_mib"]) / 9000 * 1024
    return {"levels": out, "kib_per_stream": per_stream}


def flat(velollm: str, scale: float) -> dict:
    seconds = max(20, int(60 * scale))
    with Server(velollm, "--tokens", "64") as server:
        doc, samples, wall, _ = bench(
            velollm, server.url, ["--prompt-tokens", "128", "--max-tokens", "64", "-c", "64", "-d", f"{seconds}s"], 1.0
        )
    step = doc["steps"][0]
    marks = {}
    for frac in (0.1, 0.25, 0.5, 0.75, 1.0):
        t = seconds * frac
        near = [kib for s, kib in samples if s <= t + 0.5]
        marks[f"{frac:.2f}"] = {"seconds": t, "rss_mib": (near[-1] if near else 0) / 1024}
    return {
        "seconds": seconds,
        "requests": step["requests"],
        "request_rate": step["rates"]["request_throughput"],
        "retained_of": step["samples"].get("retained_of", 0),
        "rss": marks,
        "peak_rss_mib": max(kib for _, kib in samples) / 1024,
    }


def long_response(velollm: str, scale: float) -> dict:
    """Three 100,000-token responses from each server: one that writes every token on its own and one that
    writes 64 tokens at a time. The streaming rate over each tenth of a response, from the chunk stamps."""
    tokens = 100_000
    out = {"tokens": tokens, "servers": {}}
    for events_per_write in (1, 64):
        args = ["--tokens", str(tokens), "--events-per-write", str(events_per_write)]
        with tempfile.TemporaryDirectory() as tmp, Server(velollm, *args) as server:
            records = Path(tmp) / "run.jsonl"
            doc, samples, wall, _ = bench(
                velollm, server.url, ["--prompt", "hi", "--max-tokens", str(tokens), "-n", "3", "--records", str(records)]
            )
            rates = []
            for line in records.read_text().splitlines():
                r = json.loads(line)
                content = [c for c in r["chunks"] if c["channel"] == "content"]
                ts, ev = [c["t"] for c in content], [c["events"] for c in content]
                n = len(ts)
                tenths = []
                for k in range(10):
                    a, b = k * n // 10, (k + 1) * n // 10 - 1
                    events = sum(ev[a + 1 : b + 1])
                    tenths.append(events / ((ts[b] - ts[a]) / 1e9) if ts[b] > ts[a] else float("inf"))
                median = statistics.median(tenths)
                rates.append(
                    {
                        "tokens": sum(ev),
                        "chunks": n,
                        "seconds": (ts[-1] - ts[0]) / 1e9,
                        "tenths_tok_s": tenths,
                        "median_tenth_tok_s": median,
                        # A client that slows down as the response grows streams its last tenth slowest. Judged
                        # against the server that writes 64 tokens at a time, whose 10 MB response outruns the
                        # socket buffers, so that the client's reading sets the rate. With every token its own
                        # write, the rate follows how the two processes' wake-ups interleave (see
                        # docs/performance.md): shown, not judged.
                        "no_slowdown": tenths[-1] >= 0.75 * median if events_per_write > 1 else None,
                    }
                )
            step = doc["steps"][0]
            out["servers"][str(events_per_write)] = {
                "requests": rates,
                "e2e_p50_ms": step["metrics"]["e2e_ms"]["p50"],
                "peak_rss_mib": max(kib for _, kib in samples) / 1024,
            }
    return out


def markdown(res: dict) -> str:
    a, s, f, l = res["accuracy"], res["streams"], res["flat"], res["long"]
    lines = ["| measurement | figure | target |", "|---|---|---|"]
    lines.append(
        f"| TTFT error at 1,000 streams ({a['chunk_rate']:,.0f} chunks/s) | p50 {a['ttft_error_ms']['p50']:.3f} ms, "
        f"p99 {a['ttft_error_ms']['p99']:.3f} ms | p99 < 0.5 ms |"
    )
    lines.append(
        f"| ITL error at 1,000 streams | p50 {a['itl_error_ms']['p50']:.3f} ms, p99 {a['itl_error_ms']['p99']:.3f} ms "
        f"(chunk lag p99 {a['chunk_lag_ms']['p99']:.3f} ms) | p99 < 0.5 ms |"
    )
    for n, v in s["levels"].items():
        lines.append(
            f"| {int(n):,} concurrent streams | peak RSS {v['peak_rss_mib']:.0f} MiB, {v['succeeded']:,} of "
            f"{v['requests']:,} ok, errors {v['errors'] or 'none'} | bounded |"
        )
    lines.append(f"| memory per open stream | {s['kib_per_stream']:.1f} KiB | bounded |")
    rss = ", ".join(f"{m['seconds']:.0f} s: {m['rss_mib']:.0f} MiB" for m in f["rss"].values())
    lines.append(
        f"| RSS while {f['requests']:,} requests finish ({f['request_rate']:,.0f}/s for {f['seconds']} s) | {rss} | "
        "flat |"
    )
    for epw, srv in l["servers"].items():
        how = "every token its own write" if epw == "1" else f"{epw} tokens per write"
        for i, r in enumerate(srv["requests"]):
            t = r["tenths_tok_s"]
            verdict = {True: "no slowdown: met", False: "**slower at the end**", None: "for information"}[r["no_slowdown"]]
            lines.append(
                f"| 100,000-token response #{i + 1}, {how} ({r['chunks']:,} chunks, {r['seconds']:.2f} s) | tenths "
                f"{min(t):,.0f}–{max(t):,.0f} tok/s, median {r['median_tenth_tok_s']:,.0f}, last {t[-1]:,.0f} | "
                f"{'last tenth ≥ 0.75× the median: ' if r['no_slowdown'] is not None else ''}{verdict} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--velollm", default=str(ROOT / "target/release/velollm"))
    p.add_argument("--out", default=str(ROOT / "target/perf"))
    p.add_argument("--scale", type=float, default=1.0, help="multiplies every duration (0.3 for a quick look)")
    args = p.parse_args()
    if not Path(args.velollm).exists():
        sys.exit(f"limits: {args.velollm} not found: run `cargo build --release -p velollm` first")
    res = {}
    for name, f in [("accuracy", accuracy), ("streams", streams), ("flat", flat), ("long", long_response)]:
        print(f"limits: {name} …", file=sys.stderr, flush=True)
        res[name] = f(args.velollm, args.scale)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "limits.json").write_text(json.dumps(res, indent=2))
    md = markdown(res)
    (out / "limits.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
