"""Offline inputs for the peer benchmark clients (run by scripts/perf.sh in its tools venv).

    prepare.py --gguf MODEL.gguf --out DIR

Writes, with no network:

* DIR/tokenizer/      the SmolLM2 tokenizer exported from the GGUF file (tokenizer.json, tokenizer_config.json,
                      chat_template.jinja) by transformers' own GGUF reader; GuideLLM, AIPerf, `vllm bench serve`
                      and vllm-bench load it by path.
* DIR/hf/hub/         a Hugging Face cache (HF_HOME=DIR/hf) holding the same tokenizer as the model repo
                      `velollm/smollm2-tokenizer` and a prompt data set as the dataset repo `velollm/perf-prompts`
                      (file prompts.json, ShareGPT-like), for HF inference-benchmarker, which only loads both
                      from the Hub and reads the cache first.
* DIR/prompt-128.txt  one prompt of exactly 128 tokens (for oha's fixed request body).
"""

import argparse
import json
import os
import random
import shutil
import sys

WORDS = (
    "the of and to in is was for on that with as by at from his her are this be an which or had not but "
    "their were one all its they has have new more time year first two city state world people during "
    "after also been only other most some many between over into government known used part such "
    "music system river national series later team group number school university united north south"
).split()


def export_tokenizer(gguf: str, out: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(gguf)), gguf_file=os.path.basename(gguf))
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tok.save_pretrained(tmp)
    # transformers 5 names its own backend class; older readers (GuideLLM, AIPerf, vLLM pin their own
    # transformers) know the class SmolLM2's Hub repository declares.
    cfg_path = os.path.join(tmp, "tokenizer_config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    for key in ("backend", "is_local", "local_files_only"):
        cfg.pop(key, None)
    cfg.update(tokenizer_class="GPT2Tokenizer", model_max_length=8192, add_prefix_space=False)
    cfg.setdefault("clean_up_tokenization_spaces", False)
    if tok.chat_template:
        cfg["chat_template"] = tok.chat_template
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2)
    return tok, tmp


def prompt_of(tok, rng: random.Random, tokens: int) -> str:
    """Random words cut to exactly `tokens` tokens (no special tokens), checked by re-encoding."""
    for _ in range(100):
        text = " ".join(rng.choice(WORDS) for _ in range(tokens * 2))
        ids = tok(text, add_special_tokens=False)["input_ids"][:tokens]
        text = tok.decode(ids).strip()
        if len(tok(text, add_special_tokens=False)["input_ids"]) == tokens:
            return text
    sys.exit(f"prepare.py: could not make a {tokens}-token prompt")


def hf_cache_entry(root: str, kind: str, repo: str, files: dict):
    """Place files in a Hugging Face cache as hf-hub lays them out (refs/main → snapshots/REV/FILE)."""
    rev = "0" * 40
    folder = os.path.join(root, "hub", f"{kind}--{repo.replace('/', '--')}")
    os.makedirs(os.path.join(folder, "refs"), exist_ok=True)
    snap = os.path.join(folder, "snapshots", rev)
    os.makedirs(snap, exist_ok=True)
    with open(os.path.join(folder, "refs", "main"), "w") as f:
        f.write(rev)
    for name, src in files.items():
        shutil.copyfile(src, os.path.join(snap, name))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", required=True, help="SmolLM2 GGUF file (scripts/llama-server.sh env: SMOLLM2_MODEL)")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--prompts", type=int, default=256, help="prompts in the data set")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    tok, tmp = export_tokenizer(args.gguf, os.path.join(args.out, "tokenizer"))
    rng = random.Random(42)
    data = os.path.join(args.out, "prompts.json")
    # inference-benchmarker cuts each prompt to --prompt-options num_tokens, so these are longer than 128.
    entries = [
        {"id": str(i), "conversations": [{"role": "user", "content": prompt_of(tok, rng, 192)}]}
        for i in range(args.prompts)
    ]
    with open(data, "w") as f:
        json.dump(entries, f)
    with open(os.path.join(args.out, "prompt-128.txt"), "w") as f:
        f.write(prompt_of(tok, rng, 128))
    hf = os.path.join(args.out, "hf")
    shutil.rmtree(hf, ignore_errors=True)
    hf_cache_entry(
        hf,
        "models",
        "velollm/smollm2-tokenizer",
        {n: os.path.join(tmp, n) for n in os.listdir(tmp)},
    )
    hf_cache_entry(hf, "datasets", "velollm/perf-prompts", {"prompts.json": data})
    final = os.path.join(args.out, "tokenizer")
    shutil.rmtree(final, ignore_errors=True)
    os.rename(tmp, final)
    print(f"prepare.py: tokenizer, prompts and HF cache in {args.out}")


if __name__ == "__main__":
    main()
