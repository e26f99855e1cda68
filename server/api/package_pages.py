"""``/profiles``: the carebridge FHIR package as plain server-rendered HTML pages.

A list of the package's resources by type, and one page per resource: its metadata, then
what matters for its type (the differential of a StructureDefinition, the concepts of a
CodeSystem, the includes of a ValueSet, the items of a Questionnaire), then its JSON.
Public documentation: no token needed. No scripts.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse

from server.definitions.package import PackageFile, default_package
from server.fhir.errors import NotFound

_STYLE = ("body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}table{border-collapse:collapse}"
          "td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}"
          "pre{background:#f4f4f4;padding:1rem;overflow-x:auto}code{font-size:.9em}")


def _page(title: str, body: str) -> HTMLResponse:
    html = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body>{body}</body></html>")
    return HTMLResponse(html)


def _cell(value: Any) -> str:
    return f"<td>{escape(str(value)) if value not in (None, '') else ''}</td>"


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


async def index(request: Request) -> HTMLResponse:
    package = default_package()
    manifest = package.manifest
    parts = [f"<h1>{escape(manifest['name'])} {escape(manifest['version'])}</h1>",
             f"<p>{escape(manifest.get('description', ''))}</p>",
             "<p>FHIR " + escape(", ".join(manifest["fhirVersions"])) + "; depends on "
             + escape(", ".join(f"{k} {v}" for k, v in manifest["dependencies"].items())) + "</p>"]
    for rtype in sorted({f.resource_type for f in package.files}):
        rows = "".join(
            f'<tr><td><a href="/profiles/{escape(f.page)}">{escape(f.id)}</a></td>'
            f"{_cell(f.resource.get('title') or f.resource.get('name'))}{_cell(f.resource.get('url'))}</tr>"
            for f in package.of_type(rtype))
        parts.append(f"<h2>{escape(rtype)}</h2><table><thead><tr><th>id</th><th>title</th><th>canonical URL</th>"
                     f"</tr></thead><tbody>{rows}</tbody></table>")
    return _page(f"{manifest['name']} {manifest['version']}", "".join(parts))


def _details(f: PackageFile) -> str:
    r = f.resource
    if r["resourceType"] == "StructureDefinition":
        rows = []
        for e in r.get("differential", {}).get("element", []):
            card = f"{e.get('min', '')}..{e.get('max', '')}" if "min" in e or "max" in e else ""
            types = ", ".join(t["code"] + "".join(f" ({p})" for p in t.get("profile", []) + t.get("targetProfile", []))
                              for t in e.get("type", []))
            fixed = "; ".join(f"{k}: {json.dumps(v)}" for k, v in e.items() if k.startswith(("fixed", "pattern")))
            binding = e.get("binding")
            bound = f"{binding['strength']} {binding.get('valueSet', '')}" if binding else ""
            invariants = "; ".join(f"{c['key']}: {c['human']}" for c in e.get("constraint", []))
            rows.append([e["id"], card, types, fixed, bound, e.get("short", ""), invariants])
        extra = f"<p>Base: <code>{escape(r.get('baseDefinition', ''))}</code></p>"
        return extra + "<h2>Differential</h2>" + _table(
            ["element", "card.", "type", "fixed / pattern", "binding", "short", "invariants"], rows)
    if r["resourceType"] == "CodeSystem":
        return "<h2>Concepts</h2>" + _table(["code", "display", "definition"], [
            [c["code"], c.get("display"), c.get("definition")] for c in r.get("concept", [])])
    if r["resourceType"] == "ValueSet":
        rows = [[i.get("system"), ", ".join(c["code"] for c in i.get("concept", [])) or "all codes"]
                for i in r.get("compose", {}).get("include", [])]
        return "<h2>Includes</h2>" + _table(["system", "codes"], rows)
    if r["resourceType"] == "Questionnaire":
        rows = []

        def walk(items: list[dict[str, Any]]) -> None:
            for item in items:
                code = ", ".join(f"{c.get('system')}|{c['code']}" for c in item.get("code", []))
                rows.append([item["linkId"], item.get("text"), item["type"], code, item.get("required", False)])
                walk(item.get("item", []))

        walk(r.get("item", []))
        return "<h2>Items</h2>" + _table(["linkId", "text", "type", "code", "required"], rows)
    if r["resourceType"] == "SearchParameter":
        return _table(["code", "base", "type", "expression"],
                      [[r["code"], ", ".join(r["base"]), r["type"], r.get("expression")]])
    return ""


async def resource_page(request: Request) -> HTMLResponse:
    f = default_package().by_page(request.path_params["page"])
    if f is None:
        raise NotFound(f"{request.path_params['page']} is not in the carebridge package")
    r = f.resource
    title = r.get("title") or r.get("name") or f.id
    meta = _table(["resourceType", "id", "canonical URL", "version", "status"],
                  [[r["resourceType"], f.id, r.get("url"), r.get("version"), r.get("status")]])
    body = (f'<p><a href="/profiles">carebridge package</a></p><h1>{escape(str(title))}</h1>{meta}'
            f"<p>{escape(r.get('description', ''))}</p>{_details(f)}"
            f"<h2>JSON</h2><pre><code>{escape(json.dumps(r, indent=2, ensure_ascii=False))}</code></pre>")
    return _page(str(title), body)
