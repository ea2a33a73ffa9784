# Two commands for a fresh machine (see README): `make demo` and `make test`; `make install`
# puts `lago-hubspot` and its component on the PATH.
CARGO ?= cargo
# Cargo's build directory (`CARGO_TARGET_DIR` when set), where the component is built.
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
COMPONENT := $(TARGET_DIR)/wasm32-wasip2/release/lago_hubspot_guest.wasm
# Where `cargo install` puts binaries; the component goes beside the binary, where it looks first.
INSTALL_BIN ?= $(or $(CARGO_INSTALL_ROOT),$(CARGO_HOME),$(HOME)/.cargo)/bin

.PHONY: demo test component world check dist install

## Build the component and the harness (cargo shows its progress: a first build takes minutes),
## then run the main job on its embedded default.
demo: component
	$(CARGO) build -p lago-hubspot
	$(CARGO) run -p lago-hubspot --quiet

## Build the component, then run every test (guest and harness unit tests, the emulators, and the
## end-to-end suite: one binary, `tests/testsuite`).
test: component
	$(CARGO) test --workspace

## The sync component, size-optimised (wasm32-wasip2 produces a component directly), and the
## test-only one that misbehaves on demand (the guest's `misbehave` feature, for the tests of the
## host's deadline and memory cap), in a build directory of its own so that it never overwrites
## the real component.
component:
	rustup target add wasm32-wasip2
	$(CARGO) build -p lago-hubspot-guest --target wasm32-wasip2 --release
	$(CARGO) build -p lago-hubspot-guest --features misbehave --target wasm32-wasip2 --release \
		--target-dir $(TARGET_DIR)/test-guests
	cp $(TARGET_DIR)/test-guests/wasm32-wasip2/release/lago_hubspot_guest.wasm \
		$(TARGET_DIR)/test-guests/wasm32-wasip2/release/lago_hubspot_misbehaving_guest.wasm

## Check the component against the world in `wit/` (`wasm-tools component targets`; installs
## wasm-tools from PyPI when missing), and print its imports and size.
world: component
	tools/check-world.sh $(COMPONENT)

## Formatting and lints, as CI would like them.
check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p lago-hubspot --no-default-features -- -D warnings
	$(CARGO) clippy -p lago-hubspot-guest --target wasm32-wasip2 -- -D warnings
	$(CARGO) clippy -p lago-hubspot-guest --features misbehave --target wasm32-wasip2 \
		--target-dir $(TARGET_DIR)/test-guests -- -D warnings

## Install `lago-hubspot` (optimised, with the locked dependencies) and its component beside it:
## `$(INSTALL_BIN)/lago-hubspot` and `$(INSTALL_BIN)/lago_hubspot_guest.wasm`.
install: component
	$(CARGO) install --path host-harness --locked --profile dist --target-dir $(TARGET_DIR)
	install -m 0644 $(COMPONENT) "$(INSTALL_BIN)/lago_hubspot_guest.wasm"
	@echo "installed $(INSTALL_BIN)/lago-hubspot and its component; try: lago-hubspot --help"

## Release artifacts: the .wasm and an optimised harness binary.
dist: component
	$(CARGO) build -p lago-hubspot --profile dist
	cp $(COMPONENT) $(TARGET_DIR)/dist/
