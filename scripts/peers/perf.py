"""Run benchmark clients one after another against one loopback server and measure what each costs.

Called by scripts/perf.sh (which installs the clients and starts the server); standard library only.

    perf.py --url URL --model MODEL --server-pid PID --data DIR --out DIR [--only a,b] [--scale F] [--rounds N]

Each client runs the same workload (streaming chat completions, 128-token prompts, 64 output tokens,
64 concurrent streams) twice, at two sizes N1 < N2. This process is the client's parent and a child
subreaper, so every process the client starts is reaped here, and getrusage(RUSAGE_CHILDREN) covers the
whole process tree (user + system CPU). The marginal CPU per request, (CPU2 - CPU1) / (R2 - R1), leaves out
start-up (Python imports, tokenizer loading, data set generation); the plain figure CPU2 / R2 keeps it.
R is the number of requests the client itself reports as completed (warm-up included where it has one).
With --rounds N every client is measured N times, the clients alternated within each round, and reported by
its round with the median marginal CPU (the others listed below the table).

Clients are found through environment variables set by perf.sh (PERF_BIN_<NAME>); a client whose
variable is unset or whose PERF_SKIP_<NAME> says why is reported as "not measured: <why>".
"""

import argparse
import ctypes
import datetime
import glob
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import time

CONCURRENCY = 64
PROMPT_TOKENS = 128
OUTPUT_TOKENS = 64
PR_SET_CHILD_SUBREAPER = 36
# prepare.py's Hugging Face cache holds the tokenizer under this repository name, for the clients that load it
# from the Hub only (HF_HOME points there, HF_HUB_OFFLINE=1).
HUB_TOKENIZER = "velollm/smollm2-tokenizer"
TICKS = os.sysconf("SC_CLK_TCK")

# The "LLM clients" (they parse the stream); oha reads the bytes only.
LLM_CLIENTS = ("vllm-bench", "inference-benchmarker", "vllm-bench-serve", "aiperf", "guidellm")


def env_key(name: str) -> str:
    return name.upper().replace("-", "_")


# ---------------------------------------------------------------------------------------------------------
# Process-tree measurement


def set_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit("perf.py: prctl(PR_SET_CHILD_SUBREAPER) failed; Linux is required")


def children_of(pid: int):
    """PIDs whose parent is `pid` (orphans reparented to this subreaper included)."""
    out = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(stat.split("/")[2]))
        except (OSError, IndexError, ValueError):
            pass
    return out


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a live process, in seconds (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS
    except (OSError, IndexError, ValueError):
        return 0.0


def machine_busy_s() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat), for the load of everything else."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / TICKS


def run_measured(cmd, env, cwd, log_path, timeout_s, server_pid):
    """Run `cmd`, reap its whole tree, return wall time, CPU, peak RSS and the server's CPU meanwhile."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server0, busy0 = proc_cpu_s(server_pid), machine_busy_s()
    peak_kb = 0
    with open(log_path, "wb") as log:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        rc, timed_out, main_done = None, False, None
        while True:
            try:
                pid, status, ru = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                now = time.monotonic()
                if rc is None and now - t0 > timeout_s:
                    timed_out = True
                    proc.send_signal(signal.SIGINT)
                    time.sleep(5)
                    for p in [proc.pid] + children_of(os.getpid()):
                        try:
                            os.kill(p, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                if rc is not None and now - main_done > 30:
                    # Stragglers left by the client (daemon workers): stop them, they are still counted.
                    for p in children_of(os.getpid()):
                        try:
                            os.kill(p, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                time.sleep(0.02)
                continue
            peak_kb = max(peak_kb, ru.ru_maxrss)
            if pid == proc.pid:
                rc = os.waitstatus_to_exitcode(status)
                proc.returncode = rc
                main_done = time.monotonic()
                wall = main_done - t0
                server1, busy1 = proc_cpu_s(server_pid), machine_busy_s()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    user = after.ru_utime - before.ru_utime
    sys_ = after.ru_stime - before.ru_stime
    server = server1 - server0
    return {
        "rc": rc,
        "timed_out": timed_out,
        "wall_s": round(wall, 3),
        "cpu_user_s": round(user, 3),
        "cpu_sys_s": round(sys_, 3),
        "cpu_s": round(user + sys_, 3),
        "max_rss_mb": round(peak_kb / 1024, 1),
        "server_cpu_s": round(server, 2),
        # Everything else on the machine while the client ran (other processes, not this client or server);
        # the client's CPU here is its tree's total, which is only known at the end, so it is subtracted then.
        "machine_busy_s": round(busy1 - busy0, 2),
    }


# ---------------------------------------------------------------------------------------------------------
# The clients: command line for one run, and the completed requests read back from its own output


def only_json(path_glob):
    paths = sorted(glob.glob(path_glob))
    if not paths:
        raise RuntimeError(f"no output file {path_glob}")
    with open(paths[-1]) as f:
        return json.load(f)


def velollm_cmd(c, n, out):
    return [c.bin, "bench", "--url", c.url, "--backend", "openai-chat", "--model", c.model,
            "--prompt-tokens", str(PROMPT_TOKENS), "--max-tokens", str(OUTPUT_TOKENS), "--exact-output",
            "--concurrency", str(CONCURRENCY), "--requests", str(n), "--no-progress",
            "-o", os.path.join(out, "result.json")]


def velollm_count(out):
    doc = only_json(os.path.join(out, "result.json"))
    return sum(s["succeeded"] + s.get("warmup_requests", 0) for s in doc["steps"])


def velollm_rate(out):
    return only_json(os.path.join(out, "result.json"))["steps"][-1]["rates"]["request_throughput"]


def oha_cmd(c, n, out):
    body = json.dumps({
        "model": c.model,
        "messages": [{"role": "user", "content": c.prompt}],
        "max_tokens": OUTPUT_TOKENS,
        "stream": True,
        "stream_options": {"include_usage": True},
    })
    return [c.bin, "-n", str(n), "-c", str(CONCURRENCY), "--no-tui", "--output-format", "json",
            "-o", os.path.join(out, "result.json"), "-m", "POST", "-H", "content-type: application/json",
            "-d", body, c.url + "/v1/chat/completions"]


def oha_count(out):
    doc = only_json(os.path.join(out, "result.json"))
    return int(doc.get("statusCodeDistribution", {}).get("200", 0))


def oha_rate(out):
    return only_json(os.path.join(out, "result.json"))["summary"]["requestsPerSec"]


def guidellm_cmd(c, n, out):
    # GuideLLM 0.8 takes its options as registry objects; a scenario file states them plainly. Its backend
    # check (GET /health) is off: the loopback server need not have that route, and it is not the hot path.
    scenario = {"spec": {
        "backend": {"kind": "openai_http", "target": c.url, "model": c.model,
                    "request_format": "/v1/chat/completions", "validate_backend": False},
        "profile": {"kind": "concurrent", "streams": [CONCURRENCY]},
        "constraints": [{"kind": "max_requests", "count": n}],
        "tokenizer": {"kind": "huggingface_auto", "model": c.tokenizer},
        "data": [{"kind": "synthetic_text", "prompt_tokens": PROMPT_TOKENS, "output_tokens": OUTPUT_TOKENS}],
        "outputs": [{"kind": "json", "path": os.path.join(out, "benchmarks.json")}],
    }}
    path = os.path.join(out, "scenario.json")
    with open(path, "w") as f:
        json.dump(scenario, f, indent=2)
    return [c.bin, "run", "--scenario", path, "--disable-console-interactive"]


def guidellm_count(out):
    doc = only_json(os.path.join(out, "benchmarks.json"))
    return sum(int(b["metrics"]["request_totals"]["successful"]) for b in doc["benchmarks"])


def guidellm_rate(out):
    b = only_json(os.path.join(out, "benchmarks.json"))["benchmarks"][-1]
    return b["metrics"]["request_totals"]["successful"] / b["duration"]


def aiperf_cmd(c, n, out):
    return [c.bin, "profile", "--model", c.model, "--url", c.url, "--endpoint-type", "chat", "--streaming",
            # Offline, AIPerf loads tokenizers from the HF cache only, by repository name (prepare.py's cache).
            "--tokenizer", HUB_TOKENIZER, "--concurrency", str(CONCURRENCY), "--request-count", str(n),
            "--isl", str(PROMPT_TOKENS), "--isl-stddev", "0", "--osl", str(OUTPUT_TOKENS), "--osl-stddev", "0",
            "--extra-inputs", "ignore_eos:true", "--random-seed", "42", "--no-gpu-telemetry", "--ui-type", "none",
            "--artifact-dir", out]


def aiperf_count(out):
    rc = only_json(os.path.join(out, "profile_export_aiperf.json"))["request_count"]
    return int(rc["avg"] if isinstance(rc, dict) else rc)


def aiperf_rate(out):
    return only_json(os.path.join(out, "profile_export_aiperf.json"))["request_throughput"]["avg"]


def vllm_serve_cmd(c, n, out):
    return [c.bin, "bench", "serve", "--backend", "openai-chat", "--base-url", c.url,
            "--endpoint", "/v1/chat/completions", "--model", c.model, "--tokenizer", c.tokenizer,
            "--dataset-name", "random", "--random-input-len", str(PROMPT_TOKENS),
            "--random-output-len", str(OUTPUT_TOKENS), "--num-prompts", str(n),
            "--max-concurrency", str(CONCURRENCY), "--ignore-eos", "--disable-tqdm", "--seed", "42",
            "--save-result", "--result-dir", out, "--result-filename", "result.json"]


def completed_count(out):
    return int(only_json(os.path.join(out, "result.json"))["completed"])


def completed_rate(out):
    return only_json(os.path.join(out, "result.json"))["request_throughput"]


def vllm_bench_cmd(c, n, out):
    return [c.bin, "--backend", "openai-chat", "--base-url", c.url, "--endpoint", "/v1/chat/completions",
            "--model", c.model, "--tokenizer", c.tokenizer, "--dataset-name", "random",
            "--random-input-len", str(PROMPT_TOKENS), "--random-output-len", str(OUTPUT_TOKENS),
            "--num-prompts", str(n), "--max-concurrency", str(CONCURRENCY), "--ignore-eos", "--disable-tqdm",
            "--seed", "42",
            "--save-result", "--result-dir", out, "--result-filename", "result.json"]


def ib_cmd(c, seconds, out):
    opts = "num_tokens={0},min_tokens={0},max_tokens={0},variance=0"
    return [c.bin, "--tokenizer-name", HUB_TOKENIZER, "--model-name", c.model, "--url", c.url,
            "--max-vus", str(CONCURRENCY), "--duration", f"{seconds}s", "--warmup", "1s",
            "--benchmark-kind", "throughput", "--no-console",
            "--prompt-options", opts.format(PROMPT_TOKENS), "--decode-options", opts.format(OUTPUT_TOKENS),
            "--dataset", "velollm/perf-prompts", "--dataset-file", "prompts.json"]


def ib_count(out):
    doc = only_json(os.path.join(out, "results", "*.json"))
    return sum(int(r.get("successful_requests", 0)) for r in doc["results"])


def ib_rate(out):
    doc = only_json(os.path.join(out, "results", "*.json"))
    return next(r["request_rate"] for r in doc["results"] if r["id"] != "warmup")


class Client:
    """One client: how it runs, its two sizes, and where its figures come from."""

    def __init__(self, name, label, cmd, parse, sizes, unit, startup_s):
        self.name, self.label, self.cmd = name, label, cmd
        self.count, self.rate = parse
        self.sizes, self.unit, self.startup_s = sizes, unit, startup_s


CLIENTS = [
    # Each: name, label, command, (completed requests, the tool's own requests/s), (size 1, size 2), unit, and
    # the start-up to allow for in the time limit. Sizes make run 2 - run 1 last well over 10 s on 2 cores, so
    # that start-up noise (seconds, for the Python clients) stays small next to the marginal part.
    Client("velollm", "velollm bench", velollm_cmd, (velollm_count, velollm_rate), (15000, 45000), "requests", 5),
    Client("oha", "oha (raw HTTP, no stream parsing)", oha_cmd, (oha_count, oha_rate), (15000, 45000), "requests",
           5),
    Client("vllm-bench", "vllm-bench (Rust)", vllm_bench_cmd, (completed_count, completed_rate), (10000, 30000),
           "requests", 20),
    Client("inference-benchmarker", "HF inference-benchmarker (Rust)", ib_cmd, (ib_count, ib_rate), (6, 18),
           "seconds", 30),
    Client("vllm-bench-serve", "vllm bench serve (Python)", vllm_serve_cmd, (completed_count, completed_rate),
           (3000, 9000), "requests", 90),
    Client("aiperf", "NVIDIA AIPerf", aiperf_cmd, (aiperf_count, aiperf_rate), (1500, 4500), "requests", 90),
    Client("guidellm", "GuideLLM", guidellm_cmd, (guidellm_count, guidellm_rate), (1500, 4500), "requests", 90),
]


# ---------------------------------------------------------------------------------------------------------
# Figures and report


def figures(runs):
    """Plain and marginal figures from the two runs (None where not computable)."""
    a, b = runs
    f = {"requests": [a["requests"], b["requests"]]}
    dr, dc, dw = b["requests"] - a["requests"], b["cpu_s"] - a["cpu_s"], b["wall_s"] - a["wall_s"]
    f["cpu_ms_per_request"] = round(1000 * b["cpu_s"] / b["requests"], 3)
    f["marginal_cpu_ms_per_request"] = round(1000 * dc / dr, 3) if dr > 0 else None
    if dr > 0:
        f["marginal_user_ms_per_request"] = round(1000 * (b["cpu_user_s"] - a["cpu_user_s"]) / dr, 3)
        f["marginal_system_ms_per_request"] = round(1000 * (b["cpu_sys_s"] - a["cpu_sys_s"]) / dr, 3)
    f["requests_per_s"] = round(b["requests"] / b["wall_s"], 1)
    f["marginal_requests_per_s"] = round(dr / dw, 1) if dr > 0 and dw > 0 else None
    # What the tool itself reports for run 2 (its own measurement window, start-up and drain left out).
    f["reported_requests_per_s"] = b.get("reported_rps")
    if f["marginal_cpu_ms_per_request"] is not None:
        f["startup_cpu_s"] = round(a["cpu_s"] - f["marginal_cpu_ms_per_request"] * a["requests"] / 1000, 2)
    f["server_cpu_ms_per_request"] = round(1000 * b["server_cpu_s"] / b["requests"], 3)
    f["client_cores"] = round(b["cpu_s"] / b["wall_s"], 2)
    f["other_cores"] = round(max(0.0, b["machine_busy_s"] - b["cpu_s"] - b["server_cpu_s"]) / b["wall_s"], 2)
    f["max_rss_mb"] = max(a["max_rss_mb"], b["max_rss_mb"])
    return f


def fmt(v, digits=2):
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}"


def ratios(results):
    by = {r["name"]: r["figures"] for r in results if "figures" in r}
    lines, out = [], {}
    v = by.get("velollm")
    if not v:
        return ["velollm was not measured, so no ratios."], out
    vc = v["marginal_cpu_ms_per_request"]
    llm = [(n, by[n]["marginal_cpu_ms_per_request"]) for n in LLM_CLIENTS
           if n in by and by[n]["marginal_cpu_ms_per_request"]]
    if llm and vc is not None:
        best_name, best = min(llm, key=lambda x: x[1])
        bound = min(best / 2, 0.25)
        out["cpu_vs_best_llm_client"] = {"velollm_ms": vc, "best": best_name, "best_ms": best,
                                         "ratio": round(vc / best, 3), "bound_ms": round(bound, 3),
                                         "met": vc <= bound}
        lines.append(f"- issue 7: CPU per request vs half of the best LLM client ({best_name}, {best:.3f} ms; target ≤ "
                     f"{bound:.3f} ms, and ≤ 0.25 ms): velollm {vc:.3f} ms = {vc / best:.2f}× → "
                     f"{'met' if vc <= bound else 'NOT met'}")
    if "oha" in by and vc is not None and by["oha"]["marginal_cpu_ms_per_request"]:
        o = by["oha"]["marginal_cpu_ms_per_request"]
        out["cpu_vs_oha"] = {"velollm_ms": vc, "oha_ms": o, "ratio": round(vc / o, 2), "met": vc <= 3 * o}
        lines.append(f"- issue 7: CPU per request vs 3× oha ({o:.3f} ms → bound {3 * o:.3f} ms): velollm {vc:.3f} ms = "
                     f"{vc / o:.2f}× oha → {'met' if vc <= 3 * o else 'NOT met'}")
    for peer in ("guidellm", "vllm-bench-serve"):
        if peer not in by:
            continue
        kinds = (("marginal", "marginal_requests_per_s"), ("as the tools report it", "reported_requests_per_s"))
        for kind, field in kinds:
            mine, theirs = v.get(field), by[peer].get(field)
            if not mine or not theirs:
                continue
            met = mine >= 10 * theirs
            out.setdefault(f"rate_vs_{peer}", {})[field] = {
                "velollm_rps": mine, "peer_rps": theirs, "ratio": round(mine / theirs, 1), "met": met}
            lines.append(f"- issue 7: requests/s vs 10× {peer}, {kind} ({theirs:,.0f}/s → bound {10 * theirs:,.0f}/s): "
                         f"velollm {mine:,.0f}/s = {mine / theirs:.1f}× → {'met' if met else 'NOT met'}")
    # Issue 16's goal, the same on every server: ≤ 0.5× vllm-bench and ≤ 2× oha.
    for peer, bound in (("vllm-bench", 0.5), ("oha", 2.0)):
        theirs = by.get(peer, {}).get("marginal_cpu_ms_per_request")
        if not theirs or vc is None:
            continue
        met = vc <= bound * theirs
        out[f"issue16_cpu_vs_{peer}"] = {"velollm_ms": vc, "peer_ms": theirs, "ratio": round(vc / theirs, 3),
                                          "bound": bound, "met": met}
        lines.append(f"- issue 16: CPU per request ≤ {bound}× {peer} ({theirs:.3f} ms → bound {bound * theirs:.3f} ms):"
                     f" velollm {vc:.3f} ms = {vc / theirs:.2f}× → {'met' if met else 'NOT met'}")
    if not lines:
        lines.append("No peer was measured beside velollm, so no ratios.")
    return lines, out


def markdown(meta, results, ratio_lines):
    head = [
        f"## Peer clients side by side — {meta['date']}, velollm {meta['commit']}",
        "",
        f"Machine: {meta['machine']}. Server: {meta['server']}. Workload: streaming chat, {PROMPT_TOKENS}-token "
        f"prompts, {OUTPUT_TOKENS} output tokens, concurrency {CONCURRENCY}; each client run at two sizes"
        + (f", in {meta['rounds']} rounds (clients alternated)" if meta["rounds"] > 1 else "") + ". "
        "CPU is the client's whole process tree (user + system). Marginal = (run 2 − run 1) ÷ (requests 2 − "
        "requests 1): start-up excluded.",
        "",
        "| client | version | requests (run 1 / run 2) | wall s (run 1 / run 2) | req/s (run 2) | marginal req/s "
        "| req/s the tool reports | CPU ms/request (run 2) | marginal CPU ms/request | start-up CPU s | client cores "
        "| server CPU ms/request | other load (cores) | max RSS MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = []
    for r in results:
        if "figures" not in r:
            rows.append(f"| {r['label']} | {r.get('version', '')} | not measured: {r['not_measured']} "
                        "| | | | | | | | | | | |")
            continue
        f, runs = r["figures"], r["runs"]
        rows.append(
            f"| {r['label']} | {r['version']} | {fmt(runs[0]['requests'])} / {fmt(runs[1]['requests'])} "
            f"| {fmt(runs[0]['wall_s'], 1)} / {fmt(runs[1]['wall_s'], 1)} | {fmt(f['requests_per_s'], 0)} "
            f"| {fmt(f['marginal_requests_per_s'], 0)} | {fmt(f['reported_requests_per_s'], 0)} "
            f"| {fmt(f['cpu_ms_per_request'], 3)} "
            f"| **{fmt(f['marginal_cpu_ms_per_request'], 3)}** | {fmt(f.get('startup_cpu_s'), 2)} "
            f"| {fmt(f['client_cores'])} | {fmt(f['server_cpu_ms_per_request'], 3)} | {fmt(f['other_cores'])} "
            f"| {fmt(f['max_rss_mb'], 0)} |")
    rounds = [f"- {r['label']}: " + ", ".join(fmt(x, 3) for x in r["marginal_cpu_ms_per_request_by_round"])
              for r in results if len(r.get("marginal_cpu_ms_per_request_by_round", [])) > 1]
    if rounds:
        rounds = ["", "Marginal CPU ms/request in each round (clients alternated; the table shows the median "
                  "round):", ""] + rounds
    tail = rounds + ["", "Ratios (issues 7 and 16, marginal figures):", ""] + ratio_lines + [""]
    return "\n".join(head + rows + tail)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--server-pid", type=int, required=True)
    ap.add_argument("--server", required=True, help="a line describing the server, for the report")
    ap.add_argument("--data", required=True, help="prepare.py's output directory")
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default="", help="comma-separated client names")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every run size")
    ap.add_argument("--commit", default="unknown")
    ap.add_argument("--sizes", default="", help="two run sizes (A,B) for the clients counted in requests")
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure every client this many times, alternated; each is reported by its median round")
    args = ap.parse_args()
    if args.rounds < 1:
        sys.exit("perf.py: --rounds takes 1 or more")
    set_subreaper()
    only = {x for x in args.only.split(",") if x}
    sizes = tuple(int(x) for x in args.sizes.split(",")) if args.sizes else None
    if sizes is not None and len(sizes) != 2:
        sys.exit("perf.py: --sizes takes two sizes, A,B")
    prompt_file = os.path.join(args.data, "prompt-128.txt")
    prompt = open(prompt_file).read() if os.path.exists(prompt_file) else "hello " * PROMPT_TOKENS
    env = dict(os.environ)
    env.update(HF_HOME=os.path.join(args.data, "hf"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", NO_COLOR="1", TERM="dumb", VLLM_NO_USAGE_STATS="1",
               DO_NOT_TRACK="1", TOKENIZERS_PARALLELISM="false")
    results, clients = [], []
    for c in CLIENTS:
        if only and c.name not in only:
            continue
        key = env_key(c.name)
        rec = {"name": c.name, "label": c.label, "version": os.environ.get(f"PERF_VERSION_{key}", "")}
        results.append(rec)
        skip = os.environ.get(f"PERF_SKIP_{key}")
        c.bin = os.environ.get(f"PERF_BIN_{key}")
        if skip or not c.bin:
            rec["not_measured"] = skip or "not installed"
            print(f"perf.py: {c.name}: not measured: {rec['not_measured']}", file=sys.stderr)
            continue
        c.bin = os.path.abspath(c.bin) if os.sep in c.bin else c.bin
        c.url, c.model, c.tokenizer, c.prompt = args.url, args.model, os.path.join(args.data, "tokenizer"), prompt
        rec["how"] = os.environ.get(f"PERF_HOW_{key}", "")
        rec["rounds"] = []
        clients.append((c, rec))
    # Rounds alternate between the clients, so that a slow spell of the machine falls on all of them.
    for rnd in range(args.rounds):
        for c, rec in clients:
            if "not_measured" in rec:
                continue
            label = f"round {rnd + 1} " if args.rounds > 1 else ""
            runs = []
            for i, size in enumerate(sizes if sizes and c.unit == "requests" else c.sizes):
                size = max(1, round(size * args.scale))
                out = os.path.join(args.out, c.name, f"round{rnd + 1}" if args.rounds > 1 else "", f"run{i + 1}")
                shutil.rmtree(out, ignore_errors=True)
                os.makedirs(out)
                cmd = c.cmd(c, size, out)
                limit = c.startup_s + (size if c.unit == "seconds" else size / 20) + 120
                print(f"perf.py: {c.name} {label}run {i + 1}: {size} {c.unit}", file=sys.stderr)
                m = run_measured(cmd, env, out, os.path.join(out, "client.log"), limit, args.server_pid)
                m["size"], m["unit"] = size, c.unit
                try:
                    m["requests"] = c.count(out)
                except (OSError, KeyError, ValueError, TypeError, RuntimeError, json.JSONDecodeError) as e:
                    m["requests"], m["count_error"] = 0, str(e)
                try:
                    m["reported_rps"] = round(float(c.rate(out)), 1)
                except (OSError, KeyError, ValueError, TypeError, RuntimeError, StopIteration, json.JSONDecodeError):
                    m["reported_rps"] = None
                runs.append(m)
                print(f"perf.py:   rc {m['rc']}, {m['requests']} requests, {m['wall_s']} s, CPU {m['cpu_s']} s",
                      file=sys.stderr)
                if m["rc"] != 0 or m["requests"] <= 0:
                    why = f"{label}run {i + 1} exited {m['rc']}" + (" (time limit)" if m["timed_out"] else "")
                    why += f", {m['requests']} requests counted"
                    why += f" ({m['count_error']})" if "count_error" in m else ""
                    rec["not_measured"] = f"{why}; log: {os.path.join(out, 'client.log')}"
                    break
            if "not_measured" not in rec:
                rec["rounds"].append({"runs": runs, "figures": figures(runs)})
    for _, rec in clients:
        if "not_measured" in rec or not rec["rounds"]:
            continue
        # The round with the median marginal CPU stands for the client (every figure from that one round).
        by_cpu = sorted(rec["rounds"], key=lambda r: r["figures"]["marginal_cpu_ms_per_request"] or 0)
        median = by_cpu[(len(by_cpu) - 1) // 2]
        rec["runs"], rec["figures"] = median["runs"], median["figures"]
        rec["marginal_cpu_ms_per_request_by_round"] = [r["figures"]["marginal_cpu_ms_per_request"]
                                                      for r in rec["rounds"]]
    ratio_lines, ratio_doc = ratios(results)
    meta = {
        "date": datetime.date.today().isoformat(),
        "commit": args.commit,
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Linux {platform.release()}",
        "server": args.server,
        "rounds": args.rounds,
        "workload": {"prompt_tokens": PROMPT_TOKENS, "output_tokens": OUTPUT_TOKENS, "concurrency": CONCURRENCY,
                     "stream": True, "api": "/v1/chat/completions"},
    }
    md = markdown(meta, results, ratio_lines)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "peers.md"), "w") as f:
        f.write(md)
    with open(os.path.join(args.out, "peers.json"), "w") as f:
        json.dump({**meta, "clients": results, "ratios": ratio_doc}, f, indent=2)
    print(md)


if __name__ == "__main__":
    main()
