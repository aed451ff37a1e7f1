"""Render docs/contracts.md from the JSON Schema files in schemas/.

    .venv/bin/python tools/gen_contract_docs.py          # rewrite docs/contracts.md
    .venv/bin/python tools/gen_contract_docs.py --check  # exit 1 if it is out of date

Every field of every schema becomes a table row (name, type, required, description), nested
objects as dotted names; per-type rules (``allOf``) get their own tables, and the schema's
examples are shown as JSON. The schemas are the source of truth: edit them, not the output.
Only the default settings are read (never the environment), so the output is the same on
every machine.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import schemas
from agents.kafka.topics import KIND_HEADER, SCHEMA_HEADER, Topics
from streams.settings import Settings

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "docs" / "contracts.md"
# Inputs first, then what journey publishes, then the state view; unknown schemas last.
ORDER = ("user-event", "segment-track", "segment-identify", "segment-alias", "segment-group",
         "churn-warning", "recall-trigger",
         "lifecycle-transition", "dead-letter", "user-state")
# Schemas of records journey publishes on its topics (with the schema header).
PUBLISHED = frozenset({"churn-warning", "recall-trigger", "lifecycle-transition", "dead-letter"})
Node = Mapping[str, Any]


def _where(name: str) -> str:
    """Where records of a schema travel, with the default topic prefix."""
    t = Topics.from_settings(Settings())
    by_name = {
        "user-event": f"Input: records of `{t.events}` (keyed by `user_id`) and lines of a "
                      "`journey replay` file.",
        "segment-track": f"Input: accepted wherever `user-event` is (`{t.events}`, replay "
                         "files) and mapped onto a user event (see [producing.md]"
                         "(producing.md#segment-and-rudderstack)).",
        "segment-identify": "Input: accepted wherever `user-event` is. Traits that set "
                            "consent and reachable channels, and identity stitching (see "
                            "[producing.md](producing.md#identity-stitching)).",
        "segment-alias": "Input: accepted wherever `user-event` is. Identity stitching (see "
                         "[producing.md](producing.md#identity-stitching)).",
        "segment-group": "Input: accepted wherever `user-event` is, counted and ignored.",
        "churn-warning": f"Output: topic `{t.churn_warnings}`, keyed by `user_id`.",
        "recall-trigger": f"Output: topic `{t.recall_triggers}`, keyed by `user_id`.",
        "lifecycle-transition": f"Output: topic `{t.transitions}`, keyed by `user_id`.",
        "dead-letter": f"Output: topic `{t.dead_letter}`, keyed by the rejected record's key; "
                       "`journey replay --dead-letter-out`.",
        "user-state": "Output: `GET /users/{user_id}` on a worker and each line of "
                      "`journey replay --state-out`.",
    }
    return by_name.get(name, "")


# --- small text helpers ------------------------------------------------------------------

def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _code(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return f"`{text}`"


def _range(lo: Any, hi: Any, unit: str = "") -> str:
    """``1 to 200 characters``, ``at least 0``; ``unit`` is a singular noun or empty."""
    def noun(n: Any) -> str:
        return "" if not unit else f" {unit}" + ("" if n == 1 else "s")
    if lo is not None and hi is not None:
        return f"{lo} to {hi}{noun(hi)}"
    if lo is not None:
        return f"at least {lo}{noun(lo)}"
    return f"at most {hi}{noun(hi)}"


# --- describing one schema node ------------------------------------------------------------

def _resolve(node: Node, defs: Node) -> Node:
    """A node with its local ``$ref`` merged in (the node's own keywords win)."""
    ref = node.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/$defs/"):
        return node
    target = _resolve(defs[ref[len("#/$defs/"):]], defs)
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def type_text(node: Node, defs: Node) -> str:
    """A short, human type for a schema node: ``string, 1 to 200 characters``."""
    node = _resolve(node, defs)
    if "const" in node:
        return f"always {_code(node['const'])}"
    if "enum" in node:
        return "one of " + ", ".join(_code(v) for v in node["enum"])
    if "anyOf" in node:
        return " or ".join(type_text(branch, defs) for branch in node["anyOf"])
    kind = node.get("type")
    if isinstance(kind, list):
        rest = {k: v for k, v in node.items() if k != "type"}
        return " or ".join(type_text({**rest, "type": k} if k != "null" else {"type": "null"},
                                     defs) for k in kind)
    if kind == "string":
        if node.get("format") == "date-time":
            return "date-time (RFC 3339 with offset)"
        parts = ["string"]
        if "minLength" in node or "maxLength" in node:
            parts.append(_range(node.get("minLength"), node.get("maxLength"), "character"))
        if "pattern" in node:
            parts.append("matching " + _code(node["pattern"]))
        return ", ".join(parts)
    if kind in ("number", "integer"):
        if "minimum" in node or "maximum" in node:
            return f"{kind}, {_range(node.get('minimum'), node.get('maximum'))}"
        return str(kind)
    if kind == "array":
        item = type_text(node.get("items", {}), defs)
        text = "array, each " + item if item.startswith("one of") else "array of " + item
        extras = []
        if node.get("minItems"):
            extras.append(f"at least {node['minItems']}")
        if node.get("uniqueItems"):
            extras.append("no repeats")
        return text + (f" ({', '.join(extras)})" if extras else "")
    if kind is None:
        return "any"
    return str(kind)


def _description(node: Node, defs: Node) -> str:
    own = node.get("description")
    if own:
        return str(own)
    return str(_resolve(node, defs).get("description", ""))


def field_rows(node: Node, defs: Node, prefix: str = "") -> Iterator[tuple[str, str, bool, str]]:
    """(dotted name, type, required, description) for every property, nested ones too.

    A node that only holds child rules (no type of its own) gives rows for its children only.
    """
    required = set(node.get("required", ()))
    for name, child in node.get("properties", {}).items():
        path = prefix + name
        resolved = _resolve(child, defs)
        # an anyOf of bare `required` lists is a rule on the fields (see _key_rules)
        typed = any(k in resolved for k in ("type", "enum", "const")) or (
            "anyOf" in resolved and not all(set(b) == {"required"} for b in resolved["anyOf"]))
        if typed:
            yield path, type_text(child, defs), name in required, _description(child, defs)
        if "properties" in resolved:
            yield from field_rows(resolved, defs, path + ".")


def _table(rows: list[tuple[str, str, bool, str]]) -> list[str]:
    out = ["| field | type | required | description |", "|---|---|---|---|"]
    out += [f"| `{name}` | {_cell(kind)} | {'yes' if req else ''} | {_cell(desc)} |"
            for name, kind, req, desc in rows]
    return out


def _condition(branch: Node) -> str:
    """``type` is `purchase``` for an ``if`` on one property's const or enum."""
    parts = []
    for name, rule in branch.get("if", {}).get("properties", {}).items():
        if "const" in rule:
            parts.append(f"`{name}` is {_code(rule['const'])}")
        elif "enum" in rule:
            parts.append(f"`{name}` is " + " or ".join(_code(v) for v in rule["enum"]))
    return " and ".join(parts)


def _rule(branch: Node, defs: Node) -> list[str]:
    """One ``allOf`` entry: a conditional (if/then) or an at-least-one-of (anyOf) rule."""
    head = _condition(branch)
    desc = str(branch.get("description", "")).strip()
    lines = [f"- **When {head}:** {desc}" if head else f"- {desc}"]
    then = branch.get("then", {})
    needed = [n for n in then.get("required", ()) if n not in then.get("properties", {})]
    if needed:
        lines.append("  Requires " + ", ".join(f"`{n}`" for n in needed) + ".")
    choices = branch.get("anyOf")
    if choices:
        options = []
        for choice in choices:
            names = list(choice.get("required", ()))
            text = " and ".join(f"`{n}`" for n in names)
            rules = [type_text(rule, defs) for rule in choice.get("properties", {}).values()]
            if rules:
                text += f" ({'; '.join(rules)})"
            options.append(text)
        lines.append("  At least one of: " + "; ".join(options) + ".")
    lines += _key_rules(then)
    rows = list(field_rows(then, defs))
    if rows:
        lines += ["", *("  " + row for row in _table(rows))]
    return [*lines, ""]


def _key_rules(then: Node) -> list[str]:
    """Which keys of an object field go together: an anyOf of bare `required` lists (at
    least one), and an if/then of them (this key needs that one)."""
    def keys(name: str, required: list[str]) -> str:
        return " and ".join(f"`{name}.{k}`" for k in required)

    out = []
    for name, node in then.get("properties", {}).items():
        choices = [b["required"] for b in node.get("anyOf", ()) if set(b) == {"required"}]
        if choices:
            out.append("  Needs at least one of: "
                       + "; ".join(keys(name, c) for c in choices) + ".")
        given, need = node.get("if", {}), node.get("then", {})
        if set(given) == {"required"} and set(need) == {"required"}:
            out.append(f"  With {keys(name, given['required'])}, "
                       f"{keys(name, need['required'])} is required too.")
    return out


def render_schema(name: str, version: int = 1) -> list[str]:
    doc = schemas.load(name, version)
    defs = doc.get("$defs", {})
    file = f"{name}.v{version}.json"
    const = doc.get("properties", {}).get("schema", {}).get("const")
    intro = f"**{doc.get('title', name)}.** {doc.get('description', '')}"
    out = [f"## {name} (v{version})", "", intro, ""]
    facts = [f"- File: [schemas/{file}](../schemas/{file})"]
    if const and name in PUBLISHED:
        facts.append(f"- Self-description: `schema` field and `{SCHEMA_HEADER}` header "
                     f"value `{const}`")
    where = _where(name)
    if where:
        facts.append(f"- {where}")
    closed = doc.get("additionalProperties") is False
    facts.append("- Top-level fields not listed below are rejected." if closed
                 else "- Top-level fields not listed below are allowed and ignored.")
    out += [*facts, "", "### Fields", "", *_table(list(field_rows(doc, defs))), ""]
    rules = doc.get("allOf", ())
    if rules:
        out += ["### Rules", ""]
        for branch in rules:
            out += _rule(branch, defs)
    examples = doc.get("examples", ())
    if examples:
        out += ["### Examples", ""]
        for example in examples:
            out += ["```json", json.dumps(example, indent=2, ensure_ascii=False), "```", ""]
    return out


def schema_names() -> list[str]:
    known = schemas.names()
    return [n for n in ORDER if n in known] + sorted(set(known) - set(ORDER))


def render_contracts() -> str:
    names = schema_names()
    out = ["# Event and alert contracts", "",
           "<!-- Generated by tools/gen_contract_docs.py from schemas/*.json; do not edit. -->",
           "",
           ("journey's wire contracts are the JSON Schema files (draft 2020-12) in "
            "[schemas/](../schemas/). This page is generated from them: each field with its "
            "type, whether it is required and what it means, the per-type rules, and the "
            "schemas' own examples. Topic names assume the default `topic_prefix` "
            "(`journey.`); see [configuration.md](configuration.md)."), "",
           (f"Every record journey publishes carries a `{SCHEMA_HEADER}` header naming its "
            f"schema (for example `journey.churn-warning/1`). journey's own records in its "
            f"input topics (clock ticks, referral feedback) carry a `{KIND_HEADER}` header "
            "instead; see [operations.md](operations.md#ticks-in-the-input-topic)."), "",
           "| schema | what it is |", "|---|---|"]
    for name in names:
        title = str(schemas.load(name).get("title", name))
        out.append(f"| [{name}](#{name}-v1) | {_cell(title)} |")
    out.append("")
    for name in names:
        out += render_schema(name)
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    text = render_contracts()
    if "--check" in argv:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT.relative_to(REPO)} is out of date: run tools/gen_contract_docs.py",
                  file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
