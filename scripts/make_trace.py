#!/usr/bin/env python3
"""Write a synthetic agent trace (request-per-turn JSON Lines, docs/traces.md) to stdout, for benchmarks.

    scripts/make_trace.py SESSIONS TURNS DELAY_MS [OUTPUT_TOKENS] [START_SPACING_MS]

Each session has TURNS calls; call k carries the whole history: a system prompt, the user's task, then per
earlier call an assistant tool call and its tool result. Every call is followed by DELAY_MS of tool time.
Session s starts at s × START_SPACING_MS (default 0: together).
"""
import json
import sys


def main() -> None:
    sessions, turns, delay = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    output = int(sys.argv[4]) if len(sys.argv) > 4 else 8
    spacing = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    out = sys.stdout
    for s in range(sessions):
        history = [
            {"role": "system", "content": "You are a coding agent."},
            {"role": "user", "content": f"Task {s}: find the failing test and fix it."},
        ]
        for k in range(turns):
            line = {"session_id": s, "turn": k, "messages": history, "output_tokens": output, "delay_ms": delay}
            if k == 0:
                line["timestamp_ms"] = s * spacing
            out.write(json.dumps(line, separators=(",", ":")) + "\n")
            call = f"c{k}"
            history = history + [
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": call, "type": "function", "function": {"name": "run", "arguments": json.dumps({"step": k})}}]},
                {"role": "tool", "tool_call_id": call, "content": f"step {k}: ok"},
            ]


if __name__ == "__main__":
    main()
