#!/usr/bin/env python3
"""Plan a Lago webhook with the sync component, hosted by Python's `wasmtime` instead of the
`lago-hubspot` harness: a second, independent host of the world `sync-plugin`.

Usage:
    plan.py [--context CONTEXT.json] COMPONENT.wasm EVENT.json

It loads the component, links the imports the world declares from wasmtime's own WASI
(`add_wasip2`: `wasi:io`, `wasi:clocks`, `wasi:cli`; `add_wasi_http`: `wasi:http`), picks the
handler by the event's `webhook_type` as the harness does (`customer.*` -> `on-customer`,
`subscription.*` -> `on-subscription`, `invoice.*` -> `on-invoice`, `credit_note.*` ->
`on-credit-note`; any other type is refused: the harness skips those without calling the
component), calls it in a fresh store and instance, and prints one JSON document:

    {"handler": "on-customer",
     "connection": {...the `connection` record passed...},
     "known": [...the `known-id` list passed...],
     "result": {"ok": {...the `plan`...}} or {"err": {"missing-field": "..."}}}

`lago-hubspot plan --format json EVENT.json` prints the same document, byte for byte (keys
sorted, two-space indent), so the two hosts can be compared. The exit status is 0 for an `ok` result, 1 for an `err` (the document is printed either
way), 2 when the event cannot be planned at all (unreadable, no handler, a trap).

The connection and the known HubSpot ids are the harness's defaults for a connection with no
state (code `hubspot`, customers without a type become companies, `http://localhost:8080` and
`default` in the Lago links, no custom object deployed, subscriptions, invoices and unlinked
customers synced, credit notes not, the only connection, no known ids), unless `--context` names
a JSON file whose `connection` and `known` keys hold them (e.g. a document `lago-hubspot plan
--format json` printed).

WIT values are written as canonical JSON, the shape both hosts print:
- a record: an object keyed by its WIT field names (kebab-case: `store-as`, `object-type`);
- a variant case, and a result: an object with the one key, the case's name (`{"known": "123"}`,
  `{"result-of": 0}`, `{"upsert": {...}}`, `{"ok": {...}}`); a case without a payload is
  `{"case": null}`;
- an enum: its case's name as a string (`"companies"`, `"post"`);
- an option: `null` or its value;
- a list and a tuple: an array;
- a string, a number, a bool: itself.
The same rules read `--context` into WIT values.

The handlers make no request (the world says so: `wasi:http` is for `deploy`'s reads, which this
script never calls); wasi:http is linked all the same, because the world imports it and a host
links every import the world declares.
"""

import argparse
import json
import sys

import wasmtime
from wasmtime import component as wc

# The exported interface, as the component names it.
PLANNER = "lago:hubspot/planner@0.2.0"

# The handler for each webhook type family (the part of `webhook_type` before the dot).
HANDLERS = {
    "customer": "on-customer",
    "subscription": "on-subscription",
    "invoice": "on-invoice",
    "credit_note": "on-credit-note",
}

# `lago-hubspot plan` with no state and no settings: `ConnectionSettings::default()` in
# host-harness/src/config.rs, the sole connection of an empty state.
DEFAULT_CONNECTION = {
    "code": "hubspot",
    "default-targeted-object": "companies",
    "lago-app-url": "http://localhost:8080",
    "organization-slug": "default",
    "subscriptions-object-type-id": None,
    "invoices-object-type-id": None,
    "credit-notes-object-type-id": None,
    "sync-subscriptions": True,
    "sync-invoices": True,
    "sync-credit-notes": False,
    "sync-unlinked-customers": True,
    "sole-connection": True,
}


class PlanFailed(Exception):
    """The event could not be planned at all (exit status 2)."""


def classes(ty):
    """The Python classes wasmtime-py uses for values of `ty`."""
    found = set()
    if ty is None:
        found.add(type(None))
    else:
        ty.add_classes(found)
    return found


def cases(ty):
    """A variant-like type's cases, (name, payload type or None), in WIT order."""
    if isinstance(ty, wc.OptionType):
        return [("none", None), ("some", ty.payload)]
    if isinstance(ty, wc.ResultType):
        return [("ok", ty.ok), ("err", ty.err)]
    return ty.cases


def is_tagged(ty):
    """Whether wasmtime-py writes this variant's values as `Variant(tag, payload)`: when two of
    its cases' payloads are of one Python class; otherwise a value is its payload alone."""
    seen = set()
    for _, payload in cases(ty):
        these = classes(payload) if payload is not None else {object}
        if these & seen:
            return True
        seen |= these
    return False


def to_json(ty, value):
    """A value wasmtime-py returned, as canonical JSON (see the module's docstring)."""
    if isinstance(ty, wc.RecordType):
        return {name: to_json(field, getattr(value, name)) for name, field in ty.fields}
    if isinstance(ty, wc.OptionType):
        return None if value is None else to_json(ty.payload, value)
    if isinstance(ty, (wc.VariantType, wc.ResultType)):
        if is_tagged(ty):
            tag, payload = value.tag, value.payload
        else:
            tag, payload = next(
                (name, value)
                for name, case in cases(ty)
                if case is not None and isinstance(value, tuple(classes(case)))
                or case is None and value is None
            )
        case = dict(cases(ty))[tag]
        return {tag: None if case is None else to_json(case, payload)}
    if isinstance(ty, wc.ListType):
        return [to_json(ty.element, item) for item in value]
    if isinstance(ty, wc.TupleType):
        return [to_json(element, item) for element, item in zip(ty.elements, value)]
    # Enums (str), strings, numbers and bools are already JSON.
    return value


def from_json(ty, value, where):
    """Canonical JSON (see the module's docstring) as the value wasmtime-py takes for `ty`;
    `where` names the value in errors."""
    if isinstance(ty, wc.RecordType):
        if not isinstance(value, dict):
            raise PlanFailed(f"{where}: expected an object, got {json.dumps(value)}")
        names = [name for name, _ in ty.fields]
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise PlanFailed(f"{where}: unknown field(s) {', '.join(unknown)}; fields: {', '.join(names)}")
        record = wc.Record()
        for name, field in ty.fields:
            if name not in value and not isinstance(field, wc.OptionType):
                raise PlanFailed(f"{where}: missing field `{name}`")
            setattr(record, name, from_json(field, value.get(name), f"{where}.{name}"))
        return record
    if isinstance(ty, wc.OptionType):
        return None if value is None else from_json(ty.payload, value, where)
    if isinstance(ty, (wc.VariantType, wc.ResultType)):
        if not (isinstance(value, dict) and len(value) == 1):
            raise PlanFailed(f"{where}: expected an object with one key, the case, got {json.dumps(value)}")
        ((tag, payload),) = value.items()
        known = dict(cases(ty))
        if tag not in known:
            raise PlanFailed(f"{where}: no case `{tag}`; cases: {', '.join(known)}")
        payload = None if known[tag] is None else from_json(known[tag], payload, f"{where}.{tag}")
        return wc.Variant(tag, payload) if is_tagged(ty) else payload
    if isinstance(ty, wc.EnumType):
        if value not in ty.names:
            raise PlanFailed(f"{where}: expected one of {', '.join(ty.names)}, got {json.dumps(value)}")
        return value
    if isinstance(ty, wc.ListType):
        if not isinstance(value, list):
            raise PlanFailed(f"{where}: expected an array, got {json.dumps(value)}")
        return [from_json(ty.element, item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(ty, wc.TupleType):
        return tuple(from_json(e, item, f"{where}[{i}]") for i, (e, item) in enumerate(zip(ty.elements, value)))
    return value


class SyncPlugin:
    """The component, compiled once; each call gets a fresh store and instance, as in the
    harness, so nothing survives from one event to the next."""

    def __init__(self, path):
        self.engine = wasmtime.Engine()
        try:
            self.component = wc.Component.from_file(self.engine, path)
        except (OSError, wasmtime.WasmtimeError) as error:
            raise PlanFailed(
                f"cannot load the component at {path} (build it with `make component`): {error}"
            ) from error
        self.linker = wc.Linker(self.engine)
        self.linker.add_wasip2()
        self.linker.add_wasi_http()

    def call(self, handler, connection, known, payload):
        """Calls `handler` (e.g. `on-customer`) with the connection and known ids (canonical
        JSON) and the payload (text); returns the canonical JSON of its `result<plan,
        plan-error>`."""
        store = wasmtime.Store(self.engine)
        wasi = wasmtime.WasiConfig()
        # A panic message, written just before the component traps, reaches our stderr.
        wasi.inherit_stderr()
        store.set_wasi(wasi)
        store.set_wasi_http()
        instance = self.linker.instantiate(store, self.component)
        planner = instance.get_export_index(store, PLANNER)
        index = planner and instance.get_export_index(store, handler, planner)
        func = index and instance.get_func(store, index)
        if func is None:
            raise PlanFailed(f"the component exports no `{handler}` in {PLANNER}")
        ty = func.type(store)
        params = dict(ty.params)
        args = [
            from_json(params["connection"], connection, "connection"),
            from_json(params["known"], known, "known"),
            payload,
        ]
        try:
            result = func(store, *args)
        except wasmtime.WasmtimeError as trap:
            raise PlanFailed(f"the component trapped in {handler}: {trap}") from trap
        return to_json(ty.result, result)


def handler_for(payload, path):
    """The export that plans this payload, from its `webhook_type`."""
    try:
        envelope = json.loads(payload)
    except json.JSONDecodeError as error:
        raise PlanFailed(f"{path} is not JSON: {error}") from error
    webhook_type = envelope.get("webhook_type") if isinstance(envelope, dict) else None
    if not isinstance(webhook_type, str):
        raise PlanFailed(f"{path} has no `webhook_type`: not a Lago webhook")
    family = webhook_type.split(".", 1)[0]
    if family not in HANDLERS:
        raise PlanFailed(
            f"{path}: no handler plans `{webhook_type}` (the component plans "
            + ", ".join(f"{f}.*" for f in HANDLERS)
            + "; lago-hubspot skips the others without calling it)"
        )
    return HANDLERS[family]


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--context", metavar="CONTEXT.json",
                        help="JSON whose `connection` and `known` keys are passed to the handler")
    parser.add_argument("component", metavar="COMPONENT.wasm")
    parser.add_argument("event", metavar="EVENT.json")
    args = parser.parse_args(argv)
    try:
        connection, known = DEFAULT_CONNECTION, []
        if args.context:
            with open(args.context, encoding="utf-8") as file:
                context = json.load(file)
            if not (isinstance(context, dict) and {"connection", "known"} <= context.keys()):
                raise PlanFailed(f"{args.context} has no `connection` and `known` keys")
            connection, known = context["connection"], context["known"]
        with open(args.event, encoding="utf-8") as file:
            payload = file.read()
        handler = handler_for(payload, args.event)
        result = SyncPlugin(args.component).call(handler, connection, known, payload)
    except (OSError, json.JSONDecodeError, PlanFailed) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    document = {"handler": handler, "connection": connection, "known": known, "result": result}
    print(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False))
    return 0 if "ok" in result else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
