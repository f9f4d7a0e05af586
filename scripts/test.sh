#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what is missing, starts a real llama-server with
# SmolLM2-135M on loopback (cached build and model), Debian's redis-server (the proxy's shared cache), Redis
# Stack, Postgres with pgvector, Milvus Lite and a Milvus server (the semantic cache's shared vector stores), fetches the semantic cache's
# embedding model (all-MiniLM-L6-v2, cached), then runs formatting, lint and every test.
#
#   scripts/test.sh            # what CI runs (.ci/run)
#   scripts/test.sh -- NAME    # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

# A fresh build gains nothing from incremental state, which doubles the size of target/.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

port=${VELOLLM_TEST_PORT:-18080}
scripts/llama-server.sh start "$port"
redis_port=${VELOLLM_TEST_REDIS_PORT:-16379}
scripts/redis.sh start "$redis_port"
stack_port=${VELOLLM_TEST_REDIS_STACK_PORT:-16380}
scripts/redis-stack.sh start "$stack_port"
pg_port=${VELOLLM_TEST_PGVECTOR_PORT:-15433}
scripts/pgvector.sh start "$pg_port"
milvus_port=${VELOLLM_TEST_MILVUS_PORT:-19531}
scripts/milvus-lite.sh start "$milvus_port"
milvus_server_port=${VELOLLM_TEST_MILVUS_SERVER_PORT:-19541}
scripts/milvus.sh start "$milvus_server_port"
trap 'scripts/llama-server.sh stop "$port"; scripts/redis.sh stop "$redis_port"; scripts/redis-stack.sh stop "$stack_port"; scripts/pgvector.sh stop "$pg_port"; scripts/milvus-lite.sh stop "$milvus_port"; scripts/milvus.sh stop "$milvus_server_port"' EXIT
export VELOLLM_TEST_SERVER_URL="http://127.0.0.1:$port"
export VELOLLM_TEST_REDIS_URL="redis://127.0.0.1:$redis_port"
export VELOLLM_TEST_REDIS_STACK_URL="redis://127.0.0.1:$stack_port"
export VELOLLM_TEST_PGVECTOR_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
export VELOLLM_TEST_MILVUS_URL="milvus://127.0.0.1:$milvus_port"
export VELOLLM_TEST_MILVUS_SERVER_URL="milvus://127.0.0.1:$milvus_server_port"
# The binary and the model, for the tests in which velollm launches llama-server itself.
eval "$(scripts/llama-server.sh env)"
export LLAMA_SERVER_BIN SMOLLM2_MODEL
eval "$(scripts/embedder.sh env)"
export VELOLLM_EMBEDDER_MODEL
# llm-d's Benchmark Report package: the schema and model `velollm report --llm-d` is checked against.
eval "$(scripts/llmd-report.sh env)"
export VELOLLM_LLMD_REPORT

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test (real server: $VELOLLM_TEST_SERVER_URL)"
[ "${1:-}" = "--" ] && shift
cargo test --workspace --locked --no-fail-fast "$@"
