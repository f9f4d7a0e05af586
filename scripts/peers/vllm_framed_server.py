#!/usr/bin/env python3
"""A loopback OpenAI server in Python asyncio that frames its stream the way vLLM's API server does.

    python3 scripts/peers/vllm_framed_server.py --port 9100 [--tokens 64] [--model m]

Every answer streams `--tokens` tokens, each in its own SSE chunk and its own write (HTTP/1.1 chunked
transfer encoding, as uvicorn sends it), at zero delay: a first chunk with the assistant role, one chunk per
token (`id`, `object`, `created`, `model`, `choices[].delta`, `logprobs: null`, `finish_reason`), the last
with `finish_reason: "length"`, a usage chunk (`choices: []`) when `stream_options.include_usage` asks, then
`data: [DONE]`. Non-streaming requests get one JSON body. `/v1/models` lists the model.

scripts/perf.sh measures the clients' CPU per request against it (issue 16, item 7): a real Python server's
framing, unlike velollm's own `selfcheck --serve`. No dependency beyond the standard library.
"""

import argparse
import asyncio
import json
import socket
import time
import uuid


def chunk(body: bytes) -> bytes:
    """One HTTP/1.1 chunk."""
    return b"%x\r\n%s\r\n" % (len(body), body)


def event(obj) -> bytes:
    """One SSE event, compact JSON as vLLM writes it (`exclude_unset`, no spaces)."""
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


class Server:
    def __init__(self, model: str, tokens: int):
        self.model = model
        self.tokens = tokens

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                keep = headers.get("connection", "").lower() != "close"
                if method == "GET" and path.startswith("/v1/models"):
                    data = {"object": "list", "data": [{"id": self.model, "object": "model", "owned_by": "vllm"}]}
                    await self.json(writer, 200, data, keep)
                elif method == "GET" and path.startswith("/health"):
                    await self.json(writer, 200, {}, keep)
                elif method == "POST" and path.startswith("/v1/chat/completions"):
                    await self.chat(writer, json.loads(body or b"{}"), keep)
                else:
                    await self.json(writer, 404, {"error": {"message": f"no route {method} {path}"}}, keep)
                if not keep:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def json(self, writer, status: int, obj, keep: bool):
        body = json.dumps(obj).encode()
        reason = {200: "OK", 404: "Not Found"}.get(status, "Error")
        writer.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n"
            % (status, reason.encode(), len(body), b"" if keep else b"connection: close\r\n")
            + body
        )
        await writer.drain()

    async def chat(self, writer, request, keep: bool):
        n = int(request.get("max_tokens") or request.get("max_completion_tokens") or self.tokens)
        n = min(n, self.tokens)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in request.get("messages", []))
        rid = "chatcmpl-" + uuid.uuid4().hex
        created = int(time.time())
        if not request.get("stream"):
            text = " tok" * n
            await self.json(writer, 200, {
                "id": rid, "object": "chat.completion", "created": created, "model": self.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                             "finish_reason": "length"}],
                "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens + n, "completion_tokens": n},
            }, keep)
            return
        usage = (request.get("stream_options") or {}).get("include_usage")
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
            b"transfer-encoding: chunked\r\n%s\r\n" % (b"" if keep else b"connection: close\r\n")
        )
        base = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": self.model}
        first = dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                                     "finish_reason": None}])
        writer.write(chunk(event(first)))
        await writer.drain()
        for i in range(n):
            last = i == n - 1
            c = dict(base, choices=[{"index": 0, "delta": {"content": " tok"}, "logprobs": None,
                                     "finish_reason": "length" if last else None}])
            writer.write(chunk(event(c)))
            await writer.drain()
        if usage:
            u = dict(base, choices=[], usage={"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens + n,
                                              "completion_tokens": n})
            writer.write(chunk(event(u)))
            await writer.drain()
        writer.write(chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        await writer.drain()


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tokens", type=int, default=64, help="tokens per answer at most (default 64)")
    ap.add_argument("--model", default="vllm-framed")
    args = ap.parse_args()
    server = Server(args.model, args.tokens)
    srv = await asyncio.start_server(server.handle, args.host, args.port, backlog=1024)
    async with srv:
        await srv.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
