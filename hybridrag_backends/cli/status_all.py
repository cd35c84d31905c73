"""``status`` with no TARGET: every registered database, one row each (JSON shape and exit code in
:mod:`hybridrag_backends.cli.main`). Rows are checked concurrently; whatever goes wrong with one
database (unreachable, unusable entry, no plugin for its backend) is that row's error."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List

from rich.table import Table

from ..errors import HybridRAGBackendsError
from ..models import backend_name, human_size
from ..registry import Registry
from ..targets import resolve_entry
from .output import console, emit_json, error_line, one_line, shown


def status_all(as_json: bool, verbose: bool) -> None:
    """Print the rows (table or JSON); exit 2 when any database is not healthy and connected."""
    registry = Registry.load()
    names = registry.names()
    rows = asyncio.run(_status_rows(registry, names)) if names else []
    failing = [r for r in rows if not r["ok"]]
    if as_json:
        emit_json({"registry": str(registry.path), "ok": not failing, "databases": rows})
    elif not rows:
        console.print(f"no databases registered in {shown(registry.path)}; add one with 'hybridrag-backends db register'")
    else:
        table = Table(title=shown(registry.path))
        for col in ("name", "backend", "size", "records", "health"):
            table.add_column(col, justify="right" if col in ("size", "records") else "left", no_wrap=col != "health")
        table.add_column("warnings", overflow="fold")
        for r in rows:
            colour = {"healthy": "green", "degraded": "yellow"}.get(r["health"] or "", "red")
            health = f"[{colour}]{shown(r['health'] or 'error')}[/{colour}]"
            notes = ([r["error"]] if r["error"] else []) + [w for w in r["warnings"] if w != r["error"]]
            table.add_row(shown(r["name"]), shown(r["backend"] or "?"), r["total_size_human"] or "-",
                          f"{r['records']:,}" if r["records"] is not None else "-", health,
                          shown("\n".join(notes)) or "-")
        console.print(table)
        if verbose:
            for r in rows:
                console.print(f"{shown(r['name'])}: {shown(r['location'] or '-')}", soft_wrap=True)
    if failing:
        summary = "; ".join(f"{r['name']}: {r['error'] or r['health']}" for r in failing)
        error_line(f"{len(failing)} of {len(rows)} registered databases are not healthy ({summary})")
        raise SystemExit(2)


async def _status_rows(registry: Registry, names: List[str]) -> List[Dict[str, Any]]:
    return list(await asyncio.gather(*(_status_row(registry, name) for name in names)))


async def _status_row(registry: Registry, name: str) -> Dict[str, Any]:
    """One database's row; whatever goes wrong with it is the row's error, never the others'."""
    row: Dict[str, Any] = {
        "name": name, "backend": None, "location": None, "ok": False, "error": None, "health": None,
        "is_connected": None, "total_size_bytes": None, "total_size_human": None, "records": None,
        "warnings": [], "metrics": None,
    }
    try:
        entry = registry.get(name)
        assert entry is not None
        row["backend"] = backend_name(entry.backend_type)
        resolved = resolve_entry(registry, entry)
        row["location"] = resolved.location
        metrics = await resolved.provider.metrics(resolved.config)
        metrics.warnings.extend(resolved.warnings)
    except HybridRAGBackendsError as exc:
        row.update(error=one_line(exc), health="error")
        return row
    except Exception as exc:  # a provider's bug must not hide the other databases
        row.update(error=one_line(f"internal error: {type(exc).__name__}: {exc}"), health="error")
        return row
    row.update(
        health=metrics.health, is_connected=metrics.is_connected, warnings=[one_line(w) for w in metrics.warnings],
        metrics=metrics.to_dict(), ok=metrics.health == "healthy" and metrics.is_connected,
    )
    if metrics.is_connected:
        row.update(total_size_bytes=metrics.total_size_bytes, total_size_human=human_size(metrics.total_size_bytes),
                   records=sum(metrics.store_counts.values()))
    else:  # nothing was measured: no size or count to show
        row["error"] = row["warnings"][0] if row["warnings"] else "not connected"
    return row
