"""a2d-stats --html: the report as one self-contained page.

Charts are inline SVG drawn here, with no scripts, fonts or styles from the network,
so the page opens the same offline, in a mail attachment or from a bucket.
"""

from html import escape

from .text import human_bytes, human_seconds

WIDTH = 720
COLORS = {"success": "#3a7d44", "failed_to_download": "#c0392b", "failed_to_subsample": "#e67e22",
          "filtered": "#7f8c8d", "no_status": "#b0b0b0"}
ERROR_COLOR = "#b5523b"
BAR_COLOR = "#4a6fa5"

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;max-width:760px;margin:2em auto;
padding:0 1em}
h1{font-size:1.35em;margin-bottom:.2em}h2{font-size:1.05em;margin:1.8em 0 .6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse}td,th{padding:2px 14px 2px 0;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.muted{color:#777}.warn{color:#a33}svg{display:block;max-width:100%;height:auto}
svg text{font:12px system-ui,sans-serif;fill:#333}
"""


def _e(value) -> str:
    return escape(str(value), quote=True)


def _number(value) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"


def _svg(height: int, body: list[str], label: str) -> str:
    return (f'<svg width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{_e(label)}">' + "".join(body) + "</svg>")


def bars(items: list[tuple[str, int, str]], total: int, label: str) -> str:
    """Horizontal bars: (name, count, colour) each, with count and share of `total`."""
    if not items:
        return '<p class="muted">none</p>'
    row, left, room = 24, 190, WIDTH - 190 - 130
    top = max(count for _, count, _ in items) or 1
    body = []
    for i, (name, count, color) in enumerate(items):
        y = i * row
        width = max(1, round(room * count / top)) if count else 0
        share = f" ({100 * count / total:.1f}%)" if total else ""
        body.append(f'<text x="{left - 8}" y="{y + 16}" text-anchor="end">{_e(name)}</text>'
                    f'<rect x="{left}" y="{y + 4}" width="{width}" height="{row - 8}" fill="{color}">'
                    f"<title>{_e(name)}: {count:,}</title></rect>"
                    f'<text x="{left + width + 6}" y="{y + 16}">{count:,}{_e(share)}</text>')
    return _svg(row * len(items), body, label)


def columns(values: list[float], labels: list[str], tips: list[str], label: str, y_title: str) -> str:
    """Vertical bars with a few x labels (every k-th, so they do not overlap)."""
    if not values:
        return '<p class="muted">no data</p>'
    height, left, bottom, top_pad = 210, 60, 40, 10
    plot_w, plot_h = WIDTH - left - 10, height - bottom - top_pad
    top = max(values) or 1
    step = plot_w / len(values)
    every = max(1, round(len(values) / 8))
    body = [_axes(left, top_pad, plot_w, plot_h, _number(top), "0", y_title)]
    for i, (value, name, tip) in enumerate(zip(values, labels, tips)):
        h = plot_h * value / top
        x = left + i * step
        body.append(f'<rect x="{x + 1:.1f}" y="{top_pad + plot_h - h:.1f}" width="{max(step - 2, 1):.1f}" '
                    f'height="{h:.1f}" fill="{BAR_COLOR}"><title>{_e(tip)}</title></rect>')
        if i % every == 0:
            body.append(f'<text x="{x + step / 2:.1f}" y="{top_pad + plot_h + 16}" '
                        f'text-anchor="middle">{_e(name)}</text>')
    return _svg(height, body, label)


def line(points: list[tuple[float, float, str]], label: str, x_title: str, y_title: str) -> str:
    """A rising line through (x, y, tip) points, from the origin."""
    if not points:
        return '<p class="muted">no data</p>'
    height, left, bottom, top_pad = 210, 60, 40, 10
    plot_w, plot_h = WIDTH - left - 20, height - bottom - top_pad
    x_top = max(p[0] for p in points) or 1
    y_top = max(p[1] for p in points) or 1

    def at(x, y):
        return left + plot_w * x / x_top, top_pad + plot_h * (1 - y / y_top)

    coordinates = [at(0, 0)] + [at(x, y) for x, y, _ in points]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coordinates)
    body = [_axes(left, top_pad, plot_w, plot_h, _number(y_top), "0", y_title),
            f'<polyline points="{path}" fill="none" stroke="{BAR_COLOR}" stroke-width="2"/>',
            (f'<text x="{left + plot_w}" y="{top_pad + plot_h + 16}" text-anchor="end">'
             f"{_e(human_seconds(x_top))}</text>"),
            f'<text x="{left + plot_w / 2}" y="{top_pad + plot_h + 32}" text-anchor="middle">{_e(x_title)}</text>']
    if len(points) <= 200:
        for (x, y), (_, _, tip) in zip(coordinates[1:], points):
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{BAR_COLOR}"><title>{_e(tip)}</title></circle>')
    return _svg(height, body, label)


def _axes(left: int, top_pad: int, plot_w: float, plot_h: float, y_max: str, y_min: str, y_title: str) -> str:
    bottom = top_pad + plot_h
    return (f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{bottom}" stroke="#999"/>'
            f'<line x1="{left}" y1="{bottom}" x2="{left + plot_w}" y2="{bottom}" stroke="#999"/>'
            f'<text x="{left - 6}" y="{top_pad + 10}" text-anchor="end">{_e(y_max)}</text>'
            f'<text x="{left - 6}" y="{bottom}" text-anchor="end">{_e(y_min)}</text>'
            f'<text x="12" y="{top_pad + plot_h / 2}" text-anchor="middle" '
            f'transform="rotate(-90 12 {top_pad + plot_h / 2})">{_e(y_title)}</text>')


def _table(rows: list[tuple[str, str]]) -> str:
    return "<table>" + "".join(f'<tr><th>{_e(k)}</th><td class="n">{_e(v)}</td></tr>' for k, v in rows) + "</table>"


def render_html(report: dict) -> str:
    """The report as one HTML page: summary, statuses, error kinds, top errors, sizes, throughput."""
    records = report["records"]
    dataset = report["mode"] == "dataset"
    summary = [("records", _number(records)),
               ("success rate", "-" if report["success_rate"] is None else f"{100 * report['success_rate']:.1f}%"),
               ("bytes", f"{human_bytes(report['bytes'])} ({report['bytes']:,})"),
               ("duration", human_seconds(report["duration"])),
               ("records/s", _number(report["records_per_second"]))]
    if dataset:
        shards = report["shards"]
        summary += [("samples", _number(report["samples"])), ("samples/s", _number(report["samples_per_second"])),
                    ("shards", (f"{shards['complete']:,} complete, {len(shards['incomplete']):,} incomplete, "
                                f"{len(shards['missing']):,} missing"))]
    parts = [f"<h1>a2d-stats: {_e(report['source'])}</h1>",
             f'<p class="muted">{"dataset folder" if dataset else "stream of records"}</p>', _table(summary)]

    statuses = [(name, count, COLORS.get(name, BAR_COLOR)) for name, count in report["statuses"].items()
                if count or name != "no_status"]
    parts += ["<h2>Status</h2>", bars(statuses, records, "records by status")]
    kinds = [(name, count, ERROR_COLOR) for name, count in report["error_kinds"].items()]
    parts += ["<h2>Error kinds</h2>", bars(kinds, records, "records by error kind")]

    parts.append("<h2>Top error messages</h2>")
    if report["top_errors"]:
        rows = "".join(f'<tr><td class="n">{count:,}</td><td>{_e(message)}</td></tr>'
                       for message, count in report["top_errors"])
        if report["untracked_errors"]:
            rows += f'<tr><td class="n">{report["untracked_errors"]:,}</td><td class="muted">other messages</td></tr>'
        parts.append(f"<table>{rows}</table>")
    else:
        parts.append('<p class="muted">none</p>')

    size = report["size"]
    parts.append("<h2>Payload sizes</h2>")
    if size["count"]:
        parts.append(f'<p>{size["count"]:,} sizes: min {_e(human_bytes(size["min"]))}, '
                     f'p50 ~{_e(human_bytes(size["p50"]))}, p90 ~{_e(human_bytes(size["p90"]))}, '
                     f'p99 ~{_e(human_bytes(size["p99"]))}, max {_e(human_bytes(size["max"]))}, '
                     f'mean {_e(human_bytes(size["mean"]))} <span class="muted">(percentiles within 25%)</span></p>')
    histogram = report["size_histogram"]
    parts.append(columns([c for _, _, c in histogram], [human_bytes(low) for low, _, _ in histogram],
                         [f"{human_bytes(low)} to {human_bytes(high)}: {c:,}" for low, high, c in histogram],
                         "payload size histogram, power-of-two bins", "samples"))

    parts.append("<h2>Throughput</h2>")
    if dataset:
        ends = report["shard_ends"]
        parts.append(line([(seconds, total, f"shard {name} done at {human_seconds(seconds)}: {total:,} samples")
                           for name, seconds, total in ends],
                          "cumulative samples as shards finish", "time since the first shard started", "samples"))
    else:
        arrivals = report["arrivals"]
        width = arrivals["bucket_seconds"]
        counts = arrivals["counts"]
        parts.append(f'<p class="muted">records per {human_seconds(width)}</p>')
        parts.append(columns(counts, [human_seconds(i * width) for i in range(len(counts))],
                             [f"{human_seconds(i * width)}: {c:,} records" for i, c in enumerate(counts)],
                             "records arriving over time", "records"))

    if dataset:
        shards = report["shards"]
        parts.append("<h2>Shards</h2>")
        rows = [("complete", _number(shards["complete"]))]
        rows += [(state, ", ".join(shards[state]) or "none") for state in ("incomplete", "missing")]
        parts.append("<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows) + "</table>")
        if report["warnings"]:
            parts.append("<h2>Warnings</h2><ul>" + "".join(f'<li class="warn">{_e(w)}</li>'
                                                          for w in report["warnings"]) + "</ul>")
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>a2d-stats: {_e(report['source'])}</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")
