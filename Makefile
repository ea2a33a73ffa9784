# Two commands for a fresh machine (see README): `make demo` and `make test`.
CARGO ?= cargo
COMPONENT := target/wasm32-wasip2/release/lago_hubspot_guest.wasm

.PHONY: demo test component check dist

## Build the component and the harness, then run the main job on its embedded default.
demo: component
	$(CARGO) run -p lago-hubspot --quiet

## Build the component, then run every test (guest and harness unit tests, the emulators, and the
## end-to-end suite: one binary, `tests/testsuite`).
test: component
	$(CARGO) test --workspace

## The sync component, size-optimised (wasm32-wasip2 produces a component directly).
component:
	rustup target add wasm32-wasip2
	$(CARGO) build -p lago-hubspot-guest --target wasm32-wasip2 --release

## Formatting and lints, as CI would like them.
check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p lago-hubspot --no-default-features -- -D warnings
	$(CARGO) clippy -p lago-hubspot-guest --target wasm32-wasip2 -- -D warnings

## Release artifacts: the .wasm and an optimised harness binary.
dist: component
	$(CARGO) build -p lago-hubspot --profile dist
	cp $(COMPONENT) target/dist/
