"""Write a Report in the requested formats: NAME.md, NAME.html, NAME.json, NAME.csv, NAME.junit.xml."""

from __future__ import annotations

from pathlib import Path

from edgekit.errors import EdgekitError
from edgekit.report.records import Report

FORMATS = ("md", "html", "json", "csv", "junit")
SUFFIX = {"md": ".md", "html": ".html", "json": ".json", "csv": ".csv", "junit": ".junit.xml"}


def parse_formats(text: str) -> list[str]:
    """"md,html" -> ["md", "html"]; "all" -> every format; unknown names raise one EdgekitError."""
    items = [f.strip().lower() for f in text.split(",") if f.strip()]
    if items == ["all"]:
        return list(FORMATS)
    aliases = {"markdown": "md", "xml": "junit"}
    items = [aliases.get(f, f) for f in items]
    bad = [f for f in items if f not in FORMATS]
    if bad or not items:
        raise EdgekitError(f"unknown report format {', '.join(bad) or '(none)'}",
                           f"use a comma list of {','.join(FORMATS)} (or all)")
    return list(dict.fromkeys(items))


def render(report: Report, fmt: str) -> str:
    if fmt == "md":
        from edgekit.report.markdown import render_markdown

        return render_markdown(report)
    if fmt == "html":
        from edgekit.report.html import render_html

        return render_html(report)
    if fmt == "json":
        from edgekit.report.tabular import render_json

        return render_json(report)
    if fmt == "csv":
        from edgekit.report.tabular import render_csv

        return render_csv(report)
    if fmt == "junit":
        from edgekit.report.junit import render_junit

        return render_junit(report)
    raise EdgekitError(f"unknown report format {fmt!r}", f"use one of {','.join(FORMATS)}")


def output_paths(out: Path, formats: list[str]) -> dict[str, Path]:
    """reports/NAME -> {fmt: reports/NAME.<suffix>}; an existing directory gets DIR/report.<suffix>."""
    stem = out / "report" if out.is_dir() else out
    for suffix in SUFFIX.values():  # `--out reports/x.md` means the stem reports/x
        if stem.name.endswith(suffix):
            stem = stem.with_name(stem.name[: -len(suffix)])
            break
    return {f: stem.with_name(stem.name + SUFFIX[f]) for f in formats}


def _write_atomic(path: Path, text: str) -> None:
    """One report file, replaced atomically (edgekit.files.write_text: never over a device or through a
    link, no temporary file left behind on failure)."""
    from edgekit.files import write_text

    write_text(path, text)


def write_report(report: Report, formats: list[str], out: Path) -> dict[str, Path]:
    """Render and write each format (each file replaced atomically); returns {fmt: path}."""
    paths = output_paths(out, formats)
    try:
        next(iter(paths.values())).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgekitError(f"cannot create the report directory {out.parent} ({exc.strerror})",
                           "choose a writable --out") from exc
    for fmt, path in paths.items():
        try:
            _write_atomic(path, render(report, fmt))
        except OSError as exc:
            raise EdgekitError(f"cannot write {path} ({exc.strerror})", "choose a writable --out") from exc
    return paths
