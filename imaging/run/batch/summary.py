"""The batch summary: ``batch-summary.json`` in the output folder, and its text table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...io import write_json_atomic

#: Name of the summary file written into the output folder.
SUMMARY_NAME = "batch-summary.json"


def write_summary(rows: Sequence[dict[str, Any]], output_dir: Path) -> Path:
    """Write ``rows`` to ``output_dir/batch-summary.json`` (atomically, as an ordinary new
    file: mode 0666 minus the umask) as strict JSON: non-finite numbers become null."""
    return write_json_atomic(Path(output_dir) / SUMMARY_NAME, list(rows))


def _number(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_summary(rows: Sequence[dict[str, Any]]) -> str:
    """The summary as a text table: item, status, seconds, PSNR/SSIM, output or error."""
    headers = ("item", "status", "seconds", "psnr", "ssim", "output / error")
    lines = []
    for row in rows:
        metrics = row.get("metrics") or {}
        detail = row["error"] if row["status"] == "failed" else row.get("output") or ""
        name = Path(row["item"]).name + (f" ({row['slices']} slices)" if row.get("slices") else "")
        lines.append((
            name,
            row["status"],
            _number(row.get("seconds"), ".1f"),
            _number(metrics.get("psnr"), ".2f"),
            _number(metrics.get("ssim"), ".3f"),
            detail,
        ))
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers[:-1])]
    fmt = "  ".join(f"{{:{w}}}" for w in widths) + "  {}"
    table = [fmt.format(*headers), fmt.format(*("-" * w for w in widths), "-" * 14)]
    table += [fmt.format(*line) for line in lines]
    counts = {status: sum(row["status"] == status for row in rows) for status in ("ok", "skipped", "failed")}
    table.append(f"{len(rows)} items: {counts['ok']} ok, {counts['skipped']} skipped, {counts['failed']} failed")
    return "\n".join(table)
