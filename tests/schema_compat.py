"""Breaking changes between two versions of a JSON Schema, for the contract test.

A change is breaking when an event valid under the released schema can be rejected by the new one,
or when a field readers rely on disappears: a property removed, a new required property, a type,
enum, const, bound, pattern or format narrowed, extra properties forbidden, or a combinator
(`oneOf`, `anyOf`, `allOf`, `not`) changed at all (too subtle to compare rule by rule). A new
optional property is not breaking.
"""

from __future__ import annotations

from typing import Any

LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
EXACT = ("pattern", "format", "multipleOf", "uniqueItems")
COMBINATORS = ("oneOf", "anyOf", "allOf", "not", "if", "then", "else", "prefixItems", "$ref")


def breaking_changes(old: Any, new: Any, path: str = "$") -> list[str]:
    """Every breaking difference from `old` to `new`, one sentence each (empty: compatible)."""
    if old is True or old == {}:
        return [] if new is True or new == {} else [f"{path}: constrained where anything was allowed"]
    if new is True or new == {}:
        return []
    if old is False or new is False:
        return [] if old is False else [f"{path}: forbidden"]
    found: list[str] = []
    old_types, new_types = _types(old), _types(new)
    if new_types is not None and (old_types is None or not old_types <= new_types):
        found.append(f"{path}: type narrowed from {sorted(old_types or ['any'])} to {sorted(new_types)}")
    if "const" in new and old.get("const", object()) != new["const"]:
        found.append(f"{path}: const changed to {new['const']!r}")
    if "enum" in new:
        allowed = [old["const"]] if "const" in old else old.get("enum")
        if allowed is None or any(v not in new["enum"] for v in allowed):
            found.append(f"{path}: enum narrowed to {new['enum']!r}")
    for name in LOWER_BOUNDS:
        if name in new and (name not in old or new[name] > old[name]):
            found.append(f"{path}: {name} raised to {new[name]!r}")
    for name in UPPER_BOUNDS:
        if name in new and (name not in old or new[name] < old[name]):
            found.append(f"{path}: {name} lowered to {new[name]!r}")
    for name in EXACT + COMBINATORS:
        if name in new and old.get(name) != new[name]:
            found.append(f"{path}: {name} changed")
    for name in sorted(set(new.get("required", [])) - set(old.get("required", []))):
        found.append(f"{path}: new required property {name!r}")
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    for name, schema in old_props.items():
        if name not in new_props:
            found.append(f"{path}.{name}: property removed")
        else:
            found += breaking_changes(schema, new_props[name], f"{path}.{name}")
    found += breaking_changes(old.get("additionalProperties", True), new.get("additionalProperties", True), f"{path}.*")
    if "items" in old or "items" in new:
        found += breaking_changes(old.get("items", True), new.get("items", True), f"{path}[]")
    return found


def _types(schema: dict[str, Any]) -> set[str] | None:
    kind = schema.get("type")
    if kind is None:
        return None
    types = {kind} if isinstance(kind, str) else set(kind)
    if "number" in types:
        types.add("integer")  # every integer is a number
    return types
