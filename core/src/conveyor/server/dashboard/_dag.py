"""A run's DAG as server-rendered SVG: layers left to right, one edge per data dependency.

Layout: each step's layer is its longest path from a source; within a
layer, steps are ordered by the mean position of their upstream steps
(one sweep), which keeps most edges short. Every artifact input is its
own edge, entering the node at its own port, so two outputs of one step
read by the same step are two visible edges.
"""

from __future__ import annotations

import functools
import html
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from conveyor.server.dashboard._queries import RunDetail

# Step ids, outputs and statuses repeat across nodes and edges: escape each text once.
escape = functools.lru_cache(maxsize=8192)(html.escape)

NODE_W = 190
NODE_H = 56
GAP_X = 90
GAP_Y = 24
PAD = 20
COMPACT_ABOVE = 100
"""Above this many steps, nodes are drawn smaller (the page stays usable for large graphs)."""


@dataclass(frozen=True)
class Node:
    """A step placed on the canvas."""

    id: str
    x: float
    y: float
    w: float
    h: float


def layout(steps: list[Any]) -> tuple[dict[str, Node], float, float]:
    """Positions of the IR's steps, and the canvas size."""
    compact = len(steps) > COMPACT_ABOVE
    w, h = (130, 40) if compact else (NODE_W, NODE_H)
    gap_x, gap_y = (50, 12) if compact else (GAP_X, GAP_Y)
    ids = [s.id for s in steps]
    known = set(ids)
    ups: dict[str, list[str]] = {s.id: [] for s in steps}
    for s in steps:
        for inp in s.inputs.values():
            if getattr(inp, "kind", "") == "artifact" and inp.step in known and inp.step not in ups[s.id]:
                ups[s.id].append(inp.step)
        for after in s.after:
            if after in known and after not in ups[s.id]:
                ups[s.id].append(after)
    layer: dict[str, int] = {}
    # The IR lists steps in an order where upstream steps come first.
    for sid in ids:
        layer[sid] = 1 + max((layer.get(u, 0) for u in ups[sid]), default=-1)
    columns: dict[int, list[str]] = {}
    for sid in ids:
        columns.setdefault(layer[sid], []).append(sid)
    index: dict[str, float] = {}
    for col in sorted(columns):
        members = columns[col]
        if col > 0:
            members.sort(key=lambda s: sum(index[u] for u in ups[s]) / len(ups[s]) if ups[s] else 0.0)
        for i, sid in enumerate(members):
            index[sid] = float(i)
    tallest = max((len(c) for c in columns.values()), default=0)
    height = PAD * 2 + tallest * h + max(0, tallest - 1) * gap_y
    nodes: dict[str, Node] = {}
    for col, members in columns.items():
        span = len(members) * h + max(0, len(members) - 1) * gap_y
        top = (height - span) / 2
        for i, sid in enumerate(members):
            nodes[sid] = Node(sid, PAD + col * (w + gap_x), top + i * (h + gap_y), w, h)
    width = PAD * 2 + len(columns) * w + max(0, len(columns) - 1) * gap_x
    return nodes, float(max(width, 200)), float(max(height, 100))


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    return f"{minutes // 60} h {minutes % 60} min"


def neighbourhood(steps: list[Any], center: str, depth: int = 2) -> set[str]:
    """``center`` and the steps up to ``depth`` edges upstream or downstream of it (a large graph's focus)."""
    ups: dict[str, set[str]] = {s.id: set() for s in steps}
    downs: dict[str, set[str]] = {s.id: set() for s in steps}
    for s in steps:
        for inp in s.inputs.values():
            if getattr(inp, "kind", "") == "artifact" and inp.step in ups:
                ups[s.id].add(inp.step)
                downs[inp.step].add(s.id)
        for after in s.after:
            if after in ups:
                ups[s.id].add(after)
                downs[after].add(s.id)
    keep = {center}
    for links in (ups, downs):
        frontier = {center}
        for _ in range(depth):
            frontier = {n for f in frontier for n in links.get(f, ())} - keep
            keep |= frontier
    return keep


def render_svg(detail: RunDetail, selected: str | None = None, *, focus: bool = False) -> str:
    """The run's DAG as an ``<svg>`` element (every name escaped).

    With ``focus`` and a selected step, only its neighbourhood is drawn (for graphs too large to read whole).
    """
    steps = list(detail.deployment.pipeline.steps)
    if focus and selected:
        keep = neighbourhood(steps, selected)
        steps = [s for s in steps if s.id in keep]
    nodes, width, height = layout(steps)
    run_ref = quote(detail.run.name, safe="")
    out = [
        f'<svg class="dag" xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="DAG of run {escape(detail.run.name)}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead"/></marker></defs>',
    ]
    edges: list[str] = []
    outputs_of = {s.id: list(s.outputs) for s in steps}
    for s in steps:
        dst = nodes[s.id]
        inputs = [(name, inp) for name, inp in s.inputs.items() if getattr(inp, "kind", "") == "artifact"]
        for k, (name, inp) in enumerate(inputs):
            src = nodes.get(inp.step)
            if src is None:
                continue
            outs = outputs_of[inp.step]
            o = outs.index(inp.output) if inp.output in outs else 0
            y1 = src.y + src.h * (o + 1) / (len(outs) + 1)
            y2 = dst.y + dst.h * (k + 1) / (len(inputs) + 1)
            x1, x2 = src.x + src.w, dst.x
            mid = (x1 + x2) / 2
            edges.append(
                f'<path class="edge" data-from="{escape(inp.step)}" data-to="{escape(s.id)}" '
                f'data-output="{escape(inp.output)}" data-input="{escape(name)}" marker-end="url(#arrow)" '
                f'd="M {x1:.1f} {y1:.1f} C {mid:.1f} {y1:.1f}, {mid:.1f} {y2:.1f}, {x2:.1f} {y2:.1f}">'
                f"<title>{escape(inp.step)}.{escape(inp.output)} → {escape(s.id)}.{escape(name)}</title></path>"
            )
        for after in s.after:
            src = nodes.get(after)
            if src is None:
                continue
            x1, y1, x2, y2 = src.x + src.w, src.y + src.h / 2, dst.x, dst.y + dst.h / 2
            edges.append(
                f'<path class="edge order" data-from="{escape(after)}" data-to="{escape(s.id)}" '
                f'marker-end="url(#arrow)" d="M {x1:.1f} {y1:.1f} L {x2:.1f} {y2:.1f}"/>'
            )
    out += edges
    compact = len(steps) > COMPACT_ABOVE
    for s in steps:
        n = nodes[s.id]
        sr = detail.steps.get(s.id)
        status = sr.status if sr is not None else "pending"
        cached = bool(sr is not None and sr.cached)
        took = _fmt_duration(sr.took if cached else sr.duration) if sr is not None else ""
        label = s.id if len(s.id) <= (16 if compact else 24) else s.id[: (15 if compact else 23)] + "…"
        href = f"/runs/{run_ref}?step={quote(s.id, safe='')}" + ("&focus=1" if focus else "")
        klass = (
            f"node status-{escape(status)}" + (" cached" if cached else "") + (" selected" if s.id == selected else "")
        )
        out.append(
            f'<a href="{escape(href)}" class="node-link"><g class="{klass}" data-step="{escape(s.id)}" '
            f'data-status="{escape(status)}" data-cached="{str(cached).lower()}">'
            f"<title>{escape(s.id)} ({escape(status)}"
            f"{f', from the cache: it took {took} when it ran' if cached and took else ''})</title>"
            f'<rect x="{n.x:.1f}" y="{n.y:.1f}" width="{n.w:.0f}" height="{n.h:.0f}" rx="6"/>'
            f'<text class="label" x="{n.x + 10:.1f}" y="{n.y + (16 if compact else 22):.1f}">{escape(label)}</text>'
        )
        # A cached step took no time in this run: it shows how long the run it reused took, marked as such.
        line2 = (f"cached (ran {took})" if took else "cached") if cached else status + (f" · {took}" if took else "")
        out.append(
            f'<text class="meta" x="{n.x + 10:.1f}" y="{n.y + (31 if compact else 42):.1f}">{escape(line2)}</text>'
        )
        if cached:
            bx = n.x + n.w - (46 if compact else 58)
            out.append(
                f'<g class="badge"><rect x="{bx:.1f}" y="{n.y + 5:.1f}" width="{40 if compact else 52}" height="15" '
                f'rx="7"/><text x="{bx + (20 if compact else 26):.1f}" y="{n.y + 16:.1f}" text-anchor="middle">'
                "cached</text></g>"
            )
        out.append("</g></a>")
    out.append("</svg>")
    return "".join(out)
