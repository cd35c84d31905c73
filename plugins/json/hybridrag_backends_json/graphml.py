"""GraphML (``graph_*.graphml``, written by ``networkx.write_graphml``): streaming read and write.

Reading feeds an ``XMLPullParser`` in 1 MB chunks and clears every element once
used, so memory is bounded by one node or edge. Attribute values are typed as
their ``<key attr.type>`` declares (``double`` -> float, ``long``/``int`` ->
int, ``boolean`` -> bool), as ``networkx.read_graphml`` does.

Writing streams ``<node>`` / ``<edge>`` elements to a body file while
collecting the attribute keys and their types; the header (``<key>``
declarations, assigned ``d0, d1, ...`` in order of first use, like networkx)
is written when the file is assembled.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, BinaryIO, Dict, Iterator, List, Optional, Tuple
from xml.etree.ElementTree import ParseError, XMLPullParser
from xml.sax.saxutils import escape, quoteattr

from hybridrag_backends.errors import SourceError

FEED = 1024 * 1024
NS = "{http://graphml.graphdrawing.org/xmlns}"

_DECODE = {
    "boolean": lambda s: s.strip().lower() in ("true", "1"),
    "int": int,
    "long": int,
    "integer": int,
    "float": float,
    "double": float,
    "string": str,
}

HEADER = (
    "<?xml version='1.0' encoding='utf-8'?>\n"
    '<graphml xmlns="http://graphml.graphdrawing.org/xmlns" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xsi:schemaLocation="http://graphml.graphdrawing.org/xmlns '
    'http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd">\n'
)
GRAPH_OPEN = '  <graph edgedefault="undirected">\n'
FOOTER = "  </graph>\n</graphml>\n"


def _local(tag: str) -> str:
    return tag[len(NS):] if tag.startswith(NS) else tag.rsplit("}", 1)[-1]


def iter_elements(path: Path, kind: str) -> Iterator[Tuple[str, Dict[str, Any], Optional[str]]]:
    """Yield ``(kind, payload, node_id)`` for every ``node`` or ``edge`` (``kind``) in file order.

    Node payload: attributes; edge payload: attributes plus ``source`` / ``target``.
    """
    keys: Dict[str, Tuple[str, str]] = {}  # key id -> (attr name, type)
    parser = XMLPullParser(events=("start", "end"))
    fed = 0
    graph = None
    with open(path, "rb") as f:
        while True:
            data = f.read(FEED)
            try:
                if data:
                    parser.feed(data)
                else:
                    parser.close()
                fed += len(data)
                for event, elem in parser.read_events():
                    tag = _local(elem.tag)
                    if event == "start":
                        if tag == "graph":
                            graph = elem
                        continue
                    if tag == "key":
                        keys[elem.get("id", "")] = (elem.get("attr.name") or elem.get("id", ""), elem.get("attr.type", "string"))
                    elif tag in ("node", "edge"):
                        if tag == kind:
                            yield _element(elem, tag, keys, path, fed)
                        elem.clear()
                        if graph is not None:
                            graph.clear()  # drop the cleared children too: bounded memory
            except ParseError as exc:
                line, col = exc.position
                raise SourceError(
                    f"{path}: invalid GraphML near byte {fed} (line {line}, column {col}): {exc}; "
                    f"the file is truncated or corrupt - restore it from a backup and retry"
                ) from None
            if not data:
                return


def _element(elem, tag: str, keys: Dict[str, Tuple[str, str]], path: Path, fed: int):
    payload: Dict[str, Any] = {}
    for child in elem:
        if _local(child.tag) != "data":
            continue
        name, typ = keys.get(child.get("key", ""), (child.get("key", ""), "string"))
        text = child.text or ""
        try:
            payload[name] = _DECODE.get(typ, str)(text)
        except ValueError:
            raise SourceError(
                f"{path}: {tag} {elem.get('id') or (elem.get('source'), elem.get('target'))!r} has {name}={text!r}, "
                f"not a valid {typ} (near byte {fed}); fix the value in the file and retry"
            ) from None
    if tag == "node":
        return tag, payload, elem.get("id")
    payload["source"] = elem.get("source")
    payload["target"] = elem.get("target")
    return tag, payload, None


# -- writing -----------------------------------------------------------------


# characters XML 1.0 cannot hold at all (networkx would write them and no parser could read the file back)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _checked(text: str, what: str) -> str:
    bad = _NOT_XML.search(text)
    if bad:
        raise ValueError(f"{what} holds the character {bad.group()!r}, which GraphML (XML 1.0) cannot store")
    return text


def xml_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    return "string"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        # GraphML has no nested values; LightRAG's own graphs never hold any
        return json.dumps(value, ensure_ascii=False)
    return str(value)


class KeyTable:
    """``<key>`` declarations in order of first use: (scope, name, type) -> id."""

    def __init__(self, rows: Optional[List[List[str]]] = None) -> None:
        self.rows: List[List[str]] = [list(r) for r in rows or []]
        self._ids = {(r[0], r[1], r[2]): r[3] for r in self.rows}
        self._next = len(self.rows)

    def reserve(self, start: int) -> None:
        self._next = max(self._next, start)

    def id_for(self, scope: str, name: str, typ: str) -> str:
        k = (scope, name, typ)
        if k not in self._ids:
            kid = f"d{self._next}"
            self._next += 1
            self._ids[k] = kid
            self.rows.append([scope, name, typ, kid])
        return self._ids[k]

    def declarations(self) -> str:
        return "".join(
            f"  <key id={quoteattr(kid)} for={quoteattr(scope)} attr.name={quoteattr(name)} attr.type={quoteattr(typ)} />\n"
            for scope, name, typ, kid in self.rows
        )


def element_xml(scope: str, payload: Dict[str, Any], keys: KeyTable, node_id: Optional[str] = None) -> str:
    """One ``<node>`` or ``<edge>`` element (edge payload carries ``source`` / ``target``)."""
    if scope == "node":
        out = [f"    <node id={quoteattr(_checked(str(node_id), 'the node id'))}>\n"]
        attrs = payload.items()
    else:
        if payload.get("source") is None or payload.get("target") is None:
            raise ValueError("an edge record needs 'source' and 'target' in its payload")
        out = [f"    <edge source={quoteattr(str(payload['source']))} target={quoteattr(str(payload['target']))}>\n"]
        attrs = ((k, v) for k, v in payload.items() if k not in ("source", "target"))
    for name, value in attrs:
        if value is None:  # GraphML cannot say "null"; networkx would refuse it too
            continue
        kid = keys.id_for(scope, name, xml_type(value))
        text = escape(_checked(_text(value), f"attribute {name!r}"), {"\r": "&#13;"})  # a raw CR would read back as LF
        out.append(f"      <data key={quoteattr(kid)}>{text}</data>\n")
    out.append(f"    </{scope}>\n")
    if len(out) == 2:  # no attributes: a self-closing element, as networkx writes it
        return out[0][:-2] + " />\n"
    return "".join(out)


def assemble(dest: BinaryIO, keys: KeyTable, bodies: List[Tuple[Path, int]]) -> None:
    """Write header + key declarations + each body file's first ``n`` bytes + footer."""
    dest.write((HEADER + keys.declarations() + GRAPH_OPEN).encode("utf-8"))
    for body, length in bodies:
        if not body.exists():
            continue
        with open(body, "rb") as f:
            left = length
            while left > 0:
                block = f.read(min(FEED, left))
                if not block:
                    break
                dest.write(block)
                left -= len(block)
    dest.write(FOOTER.encode("utf-8"))
