"""a2d-stats' report (from a stream or a dataset) as an aligned plain-text table.

Also the human forms of bytes and seconds that the HTML page shares.
"""


def human_bytes(value: float | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} PB"  # not reached


def human_seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.2f} s"
    minutes, seconds = divmod(round(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:>5.1f}%" if whole else ""


def _ranges(names: list[str], limit: int = 20) -> str:
    """Shard names with runs shown as first-last: 00003, 00005-00009."""
    runs: list[list[str]] = []
    for name in names:
        if runs and int(name) == int(runs[-1][-1]) + 1:
            runs[-1].append(name)
        else:
            runs.append([name])
    parts = [run[0] if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs]
    more = f" and {len(parts) - limit} more" if len(parts) > limit else ""
    return ", ".join(parts[:limit]) + more


def render_text(report: dict) -> str:
    """The report as an aligned plain-text table."""
    rows = _count_rows(report) + _size_and_time_rows(report)  # label, value (right-aligned), note
    if report["mode"] == "dataset":
        rows += _dataset_rows(report)
    elif report.get("skipped_lines"):
        rows.append(("skipped lines", f"{report['skipped_lines']:,}", ""))
    label_width = max(len(label) for label, _, _ in rows)
    value_width = max(len(value) for _, value, _ in rows)
    lines = [f"{report['source']} ({'dataset folder' if report['mode'] == 'dataset' else 'stream of records'})"]
    lines += [f"{label:<{label_width}}  {value:>{value_width}}  {note}".rstrip() for label, value, note in rows]
    for warning in report.get("warnings") or []:
        lines.append(f"warning: {warning}")
    return "\n".join(lines) + "\n"


def _count_rows(report: dict) -> list[tuple[str, str, str]]:
    """Records, statuses, error kinds and top error messages."""
    records = report["records"]
    rows = [("records", f"{records:,}", "")]
    for status, count in report["statuses"].items():
        if count or status != "no_status":
            rows.append((f"  {status}", f"{count:,}", _percent(count, records)))
    if report["error_kinds"]:
        rows.append(("error kinds", "", ""))
        rows += [(f"  {kind}", f"{count:,}", _percent(count, records))
                 for kind, count in report["error_kinds"].items()]
    if report["top_errors"]:
        rows.append(("top errors", "", ""))
        rows += [("", f"{count:,}", message) for message, count in report["top_errors"]]
        if report["untracked_errors"]:
            rows.append(("", f"{report['untracked_errors']:,}", "(other messages, not tracked)"))
    return rows


def _size_and_time_rows(report: dict) -> list[tuple[str, str, str]]:
    size = report["size"]
    rows = [("bytes", human_bytes(report["bytes"]), f"{report['bytes']:,}")]
    if size["count"]:
        rows.append(("sizes", f"{size['count']:,}",
                     (f"min {human_bytes(size['min'])}, p50 ~{human_bytes(size['p50'])}, "
                      f"p90 ~{human_bytes(size['p90'])}, p99 ~{human_bytes(size['p99'])}, "
                      f"max {human_bytes(size['max'])}, mean {human_bytes(size['mean'])}")))
    rows.append(("duration", human_seconds(report["duration"]), ""))
    if report["records_per_second"] is not None:
        rows.append(("records/s", f"{report['records_per_second']:,.1f}", ""))
    return rows


def _dataset_rows(report: dict) -> list[tuple[str, str, str]]:
    rows = [("samples", f"{report['samples']:,}", "")]
    if report["samples_per_second"] is not None:
        rows.append(("samples/s", f"{report['samples_per_second']:,.1f}", ""))
    shards = report["shards"]
    rows.append(("shards", f"{shards['complete']:,}", "complete"))
    for state in ("incomplete", "missing"):
        if shards[state]:
            rows.append(("", f"{len(shards[state]):,}", f"{state}: {_ranges(shards[state])}"))
    return rows
