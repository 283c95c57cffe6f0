#!/usr/bin/env bash
# The test command: everything CI checks, runnable on a fresh project machine.
#
#   scripts/test.sh            # services, tools, fmt, clippy, all tests
#
# It starts the local RabbitMQ and PostgreSQL when they are down, installs the
# test tools it needs (the Python `hl7` package for the differential test,
# promtool), then runs cargo fmt --check, clippy with warnings as errors,
# compiles the benchmarks, runs the doc tests and, last, the whole test suite
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

say "benchmarks compile"
# Only the criterion targets (`--bench '*'`): plain `cargo bench` would also
# build every library's and binary's unit tests in the optimised profile, a
# second release compile of tocsin-fhir (about 20 minutes on a cold cache)
# for tests that the suite below runs anyway.
cargo bench --workspace --locked --bench '*' --no-run

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
