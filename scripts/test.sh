#!/usr/bin/env bash
# The test command: everything CI checks, runnable on a fresh project machine.
#
#   scripts/test.sh            # services, tools, fmt, clippy, all tests
#
# It starts the local RabbitMQ and PostgreSQL when they are down, installs the
# test tools it needs (the Python `hl7` package for the differential test,
# promtool), then runs cargo fmt --check, clippy with warnings as errors,
# runs each benchmark once, runs the doc tests and, last, the whole test suite
# (cargo-nextest when installed, else cargo test). Tests that need a server fail, not skip, when it
# cannot be reached.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }

say "services"
bash scripts/services.sh

say "test tools"
python3 -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
# promtool (Debian `prometheus`) and amtool (`prometheus-alertmanager`) for
# the observability and deploy tests, which fail without them.
if ! command -v promtool >/dev/null 2>&1 || ! command -v amtool >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus prometheus-alertmanager
fi

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

say "benchmarks (criterion's test mode: each one run once, unoptimised)"
# Only the criterion targets (`--bench '*'`). Built by `cargo test`, they
# share the debug build the suite below needs, and criterion, not given
# `--bench`, runs each benchmark once as a check that it still works: they
# keep compiling and running without a second, optimised compile of
# tocsin-fhir (over 30 minutes on a slow two-core machine). The tracker's
# benchmark fills only 1,000 open expectations here. Full runs, optimised:
# `cargo bench -p CRATE` (docs/performance.md).
TOCSIN_BENCH_OPEN=1000 cargo test --workspace --locked --bench '*'

say "doc tests"
# nextest does not run doc tests.
cargo test --workspace --locked --doc

# The whole suite last, so its summary closes the output.
say "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
