#!/usr/bin/env python3
"""What `velollm proxy` costs, measured beside LiteLLM's proxy in the same run (docs/performance.md,
"The proxy"). Run it through scripts/proxy-perf.sh, which builds velollm in release mode and installs LiteLLM.

Every figure comes from velollm bench's result documents and from /proc (the proxies' whole-process CPU and
RSS), against velollm's own loopback server (`velollm selfcheck --serve`, zero delay, whole responses per
write, so the upstream is not the limit):

  1. added latency at one request at a time: the same sequential run direct and through each proxy, velollm's
     also with `--workers 1` (TTFT, E2E p50 and p99; added = through − direct, as the Busbar board computes it);
  2. requests/s through each proxy at 64 concurrent streams, and the proxy's CPU per request, marginal between
     two run sizes (start-up and warm-up left out);
  3. added p99 at half the rate velollm's proxy sustained, three rounds, with how busy the cores were (LiteLLM
     stopped first);
  4. 1,000 concurrent streams through velollm's proxy from a paced upstream (20 ms between tokens): every
     stream completes, the largest gap between chunks, RSS idle and at 1,000 streams;
  5. an exact-cache hit's TTFT (the same deterministic request again and again).

Environment: VELOLLM (the binary), LITELLM (litellm's executable; unset: LiteLLM is "not measured"),
PROXY_PERF_OUT (where results go, default results/proxy-perf), PROXY_PERF_SCALE (multiplies request counts,
default 1).
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VELOLLM = os.environ.get("VELOLLM", os.path.join(ROOT, "target", "release", "velollm"))
LITELLM = os.environ.get("LITELLM", "")
OUT = os.environ.get("PROXY_PERF_OUT", os.path.join(ROOT, "results", "proxy-perf"))
SCALE = float(os.environ.get("PROXY_PERF_SCALE", "1"))
TICK = os.sysconf("SC_CLK_TCK")

LOOP, PACED, VPROXY, VCACHE, LITE, VPACED, VPROXY1 = 18099, 18098, 18100, 18102, 18101, 18103, 18104


def n(count):
    return max(10, int(count * SCALE))


def wait_http(url, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status < 500:
                    return True
        except Exception:
            time.sleep(0.2)
    return False


PROCS = []


def start(name, cmd, ready_url, env=None):
    log = open(os.path.join(OUT, f"{name}.log"), "w")
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    PROCS.append(p)
    if not wait_http(ready_url):
        sys.exit(f"proxy_perf: {name} did not answer {ready_url} (log: {log.name})")
    return p


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_ticks():
    """Busy and total ticks of all the machine's cores, from /proc/stat."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    idle = ticks[3] + ticks[4]
    return sum(ticks) - idle, sum(ticks)


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def bench(name, url, args):
    """One `velollm bench` run; its first step's result."""
    out = os.path.join(OUT, f"{name}.json")
    cmd = [VELOLLM, "bench", "--url", url, "--no-selfcheck", "-o", out, *args]
    r = subprocess.run(cmd, capture_output=True, text=True)
    with open(os.path.join(OUT, f"{name}.log"), "w") as f:
        f.write(" ".join(cmd) + "\n" + r.stdout + r.stderr)
    if r.returncode not in (0, 3):
        sys.exit(f"proxy_perf: {' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    with open(out) as f:
        return json.load(f)["steps"][0]


def m(step, metric, stat):
    v = step["metrics"].get(metric)
    return v.get(stat) if v else None


def fmt(v, digits=3):
    return "–" if v is None else f"{v:,.{digits}f}"


def main():
    os.makedirs(OUT, exist_ok=True)
    results = {"litellm": bool(LITELLM)}
    loop = f"http://127.0.0.1:{LOOP}"
    start("loopback", [VELOLLM, "selfcheck", "--serve", f"127.0.0.1:{LOOP}", "--events-per-write", "64"],
          f"{loop}/v1/models")
    paced = f"http://127.0.0.1:{PACED}"
    start("paced", [VELOLLM, "selfcheck", "--serve", f"127.0.0.1:{PACED}", "--ttft", "20ms", "--itl", "20ms"],
          f"{paced}/v1/models")
    vproxy = start("velollm-proxy", [VELOLLM, "proxy", "--listen", f"127.0.0.1:{VPROXY}", "--upstream", loop,
                                     "--cache", "off"], f"http://127.0.0.1:{VPROXY}/health")
    vcache = start("velollm-proxy-cache", [VELOLLM, "proxy", "--listen", f"127.0.0.1:{VCACHE}", "--upstream", loop],
                   f"http://127.0.0.1:{VCACHE}/health")
    vpaced = start("velollm-proxy-paced", [VELOLLM, "proxy", "--listen", f"127.0.0.1:{VPACED}", "--upstream", paced,
                                           "--cache", "off"], f"http://127.0.0.1:{VPACED}/health")
    # One thread: no hand-off between threads, measured where it matters, one request at a time.
    vproxy1 = start("velollm-proxy-1", [VELOLLM, "proxy", "--listen", f"127.0.0.1:{VPROXY1}", "--upstream", loop,
                                        "--cache", "off", "--workers", "1"], f"http://127.0.0.1:{VPROXY1}/health")
    targets = {"direct": (loop, None), "velollm proxy": (f"http://127.0.0.1:{VPROXY}", vproxy)}
    if LITELLM:
        cfg = os.path.join(OUT, "litellm.yaml")
        with open(cfg, "w") as f:
            f.write("model_list:\n  - model_name: loop\n    litellm_params:\n      model: openai/loop\n"
                    f"      api_base: {loop}/v1\n      api_key: none\n")
        env = dict(os.environ, LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY="true", LITELLM_LOG="ERROR")
        lite = start("litellm", [LITELLM, "--config", cfg, "--host", "127.0.0.1", "--port", str(LITE),
                                 "--num_workers", "1"], f"http://127.0.0.1:{LITE}/health/liveliness", env)
        targets["LiteLLM proxy"] = (f"http://127.0.0.1:{LITE}", lite)
    common = ["--prompt", "hello there", "--max-tokens", "64"]

    # 1. One request at a time.
    seq = {}
    sequential = dict(targets)
    sequential["velollm proxy --workers 1"] = (f"http://127.0.0.1:{VPROXY1}", vproxy1)
    for name, (url, _) in sequential.items():
        count = n(2000) if name != "LiteLLM proxy" else n(500)
        bench(f"seq-warm-{name}", url, [*common, "--iterations", "50"])
        seq[name] = bench(f"seq-{name}", url, [*common, "--iterations", str(count)])
    results["sequential"] = {
        k: {s: {"ttft": m(v, "ttft_ms", s), "e2e": m(v, "e2e_ms", s)} for s in ("p50", "p99")} for k, v in seq.items()
    }

    # 2. Requests/s at 64 streams and CPU per request, marginal between two sizes.
    rate = {}
    for name, (url, proc) in targets.items():
        small, large = (n(4000), n(16000)) if name != "LiteLLM proxy" else (n(400), n(1600))
        runs = []
        for size in (small, large):
            before = cpu_s(proc.pid) if proc else 0.0
            step = bench(f"c64-{size}-{name}", url, [*common, "--concurrency", "64", "--requests", str(size)])
            after = cpu_s(proc.pid) if proc else 0.0
            runs.append((size, step, after - before))
        (s1, _, c1), (s2, st2, c2) = runs
        rate[name] = {
            "req_per_s": st2["rates"]["request_throughput"],
            "success_rate": st2["success_rate"],
            "proxy_cpu_ms_per_request": (c2 - c1) / (s2 - s1) * 1e3 if proc else None,
            "e2e_p99": m(st2, "e2e_ms", "p99"),
        }
    results["concurrency_64"] = rate

    # LiteLLM is measured no further: stopped, so that its background work does not share the cores.
    if LITELLM:
        lite.terminate()
        lite.wait(timeout=30)

    # 3. Added p99 at half the rate velollm's proxy sustained: three rounds, direct and through the proxy in
    # turn, with how busy the machine's cores were during each run.
    half = rate["velollm proxy"]["req_per_s"] / 2
    dur = f"{max(5, int(10 * SCALE))}s"
    rounds = []
    for i in range(3):
        halfr = {}
        for name in ("direct", "velollm proxy"):
            url = targets[name][0]
            before = machine_ticks()
            st = bench(f"half-{i}-{name}", url,
                       [*common, "--rate", f"{half:.0f}", "--duration", dur, "--concurrency", "256"])
            busy, total = (a - b for a, b in zip(machine_ticks(), before))
            halfr[name] = {"e2e_p99": m(st, "e2e_ms", "p99"), "ttft_p99": m(st, "ttft_ms", "p99"),
                           "req_per_s": st["rates"]["request_throughput"], "success_rate": st["success_rate"],
                           "cores_busy": os.cpu_count() * busy / max(total, 1)}
        rounds.append(halfr)
    results["half_rate"] = {"rate": half, "rounds": rounds}

    # 4. 1,000 streams through the proxy from a paced upstream.
    idle = rss_mib(vpaced.pid)
    peak = [idle]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mib(vpaced.pid))
            time.sleep(0.05)

    t = threading.Thread(target=sample)
    t.start()
    st = bench("streams-1000", f"http://127.0.0.1:{VPACED}",
               [*common, "--concurrency", "1000", "--requests", str(n(3000))])
    stop.set()
    t.join()
    results["streams_1000"] = {
        "requests": st["requests"], "success_rate": st["success_rate"], "rss_idle_mib": idle,
        "rss_peak_mib": peak[0], "itl_chunk_p99": m(st, "itl_chunk_ms", "p99"),
        "itl_chunk_max": m(st, "itl_chunk_ms", "max"), "ttft_p99": m(st, "ttft_ms", "p99"),
    }

    # 5. Exact-cache hits.
    st = bench("hits", f"http://127.0.0.1:{VCACHE}", [*common, "--temperature", "0", "--iterations", str(n(2000))])
    results["hits"] = {"ttft_p50": m(st, "ttft_ms", "p50"), "ttft_p99": m(st, "ttft_ms", "p99"),
                       "e2e_p50": m(st, "e2e_ms", "p50")}
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{VCACHE}/metrics").read().decode()
    results["hits"]["lookups"] = [l for l in metrics.splitlines() if l.startswith("velollm_proxy_cache_lookups_total")]

    with open(os.path.join(OUT, "proxy-perf.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(markdown(results))
    with open(os.path.join(OUT, "proxy-perf.md"), "w") as f:
        f.write(markdown(results))


def markdown(r):
    lines = ["| one request at a time | TTFT p50 | TTFT p99 | E2E p50 | E2E p99 | added TTFT p99 | added E2E p99 |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    d = r["sequential"]["direct"]
    for name, v in r["sequential"].items():
        added = lambda k: None if name == "direct" else v["p99"][k] - d["p99"][k]
        lines.append(f"| {name} | {fmt(v['p50']['ttft'])} ms | {fmt(v['p99']['ttft'])} ms | {fmt(v['p50']['e2e'])} ms"
                     f" | {fmt(v['p99']['e2e'])} ms | {fmt(added('ttft'))} ms | {fmt(added('e2e'))} ms |")
    lines += ["", "| 64 concurrent streams | requests/s | success | proxy CPU per request | E2E p99 |",
              "|---|---:|---:|---:|---:|"]
    for name, v in r["concurrency_64"].items():
        lines.append(f"| {name} | {fmt(v['req_per_s'], 0)} | {fmt(v['success_rate'] * 100, 1)} % | "
                     f"{fmt(v['proxy_cpu_ms_per_request'])} ms | {fmt(v['e2e_p99'])} ms |")
    h = r["half_rate"]
    lines += ["", f"At half velollm's proxy rate ({h['rate']:,.0f} req/s offered; Poisson arrivals, up to 256 in flight; "
              "client, proxy and upstream share the cores):", "",
              "| round | E2E p99 direct | through the proxy | added | achieved | success | cores busy direct / "
              "through |", "|---|---:|---:|---:|---:|---:|---:|"]
    for i, x in enumerate(h["rounds"], 1):
        d, v = x["direct"], x["velollm proxy"]
        lines.append(f"| {i} | {fmt(d['e2e_p99'])} ms | {fmt(v['e2e_p99'])} ms | {fmt(v['e2e_p99'] - d['e2e_p99'])} ms"
                     f" | {fmt(v['req_per_s'], 0)} req/s | {fmt(v['success_rate'] * 100, 1)} % | "
                     f"{fmt(d['cores_busy'], 2)} / {fmt(v['cores_busy'], 2)} |")
    s = r["streams_1000"]
    lines += ["", f"1,000 concurrent streams (paced upstream, 20 ms between tokens): {s['requests']} requests, success "
                  f"{fmt(s['success_rate'] * 100, 1)} %, largest gap between chunks {fmt(s['itl_chunk_max'])} ms "
                  f"(p99 {fmt(s['itl_chunk_p99'])} ms), TTFT p99 {fmt(s['ttft_p99'])} ms; proxy RSS idle "
                  f"{fmt(s['rss_idle_mib'], 1)} MiB, peak {fmt(s['rss_peak_mib'], 1)} MiB."]
    hits = r["hits"]
    lines += ["", f"Exact-cache hits: TTFT p50 {fmt(hits['ttft_p50'])} ms, p99 {fmt(hits['ttft_p99'])} ms "
                  f"({'; '.join(hits['lookups'])})."]
    if not r["litellm"]:
        lines += ["", "LiteLLM proxy: not measured (LITELLM unset; scripts/proxy-perf.sh installs it)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in PROCS:
            p.terminate()
        for p in PROCS:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
