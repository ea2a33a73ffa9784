#!/usr/bin/env bash
# Sets up the second host of the test suite (tests/testsuite/second_host.rs): a Python virtual
# environment with the `wasmtime` package pinned in tests/second-host/requirements.txt, in
# <target dir>/second-host-venv (`CARGO_TARGET_DIR` when set, else target/), where the test looks.
# Idempotent: a second run only checks the pinned version is installed.
# Usage: tools/second-host.sh
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir=${CARGO_TARGET_DIR:-target}
venv=$target_dir/second-host-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" || {
        echo "cannot create a Python venv at $venv: install python3-venv (Debian) and run again" >&2
        exit 1
    }
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/second-host/requirements.txt
"$venv/bin/python" -c 'import wasmtime, wasmtime.component; print("second host:", wasmtime.__name__, "from", wasmtime.__file__)'
"$venv/bin/python" -m pip show wasmtime | sed -n 's/^Version: /wasmtime version: /p'
