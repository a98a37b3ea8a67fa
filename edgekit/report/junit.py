"""JUnit XML view of a Report for CI gates: one <testsuite> per model and target, one <testcase> per budget, parity
or run check. A failed budget or parity check is a <failure>, a failed/killed run an <error>, a check that could not
be evaluated (missing figure, parity not executed) is <skipped> with the reason."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from edgekit.report.records import Check, Report


def _suite_name(c: Check) -> str:
    return f"{c.model} @ {c.target}" if c.target else f"{c.model} (model)"


def render_junit(report: Report) -> str:
    root = ET.Element("testsuites", name="edgekit report")
    suites: dict[str, list[Check]] = {}
    for c in report.checks:
        suites.setdefault(_suite_name(c), []).append(c)
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for name in sorted(suites):
        checks = suites[name]
        counts = {"tests": len(checks), "failures": sum(c.status == "fail" for c in checks),
                  "errors": sum(c.status == "error" for c in checks),
                  "skipped": sum(c.status == "skipped" for c in checks)}
        suite = ET.SubElement(root, "testsuite", name=name, timestamp=report.generated,
                              **{k: str(v) for k, v in counts.items()})
        seen: dict[str, int] = {}
        for c in checks:
            seen[c.name] = seen.get(c.name, 0) + 1
        for c in checks:
            classname = f"edgekit.{c.kind}.{c.model}"
            # names stay stable across builds (CI tracks tests by name); only repeats in one report get the run id
            name = f"{c.name} [run {c.run_id}]" if seen[c.name] > 1 and c.run_id is not None else c.name
            case = ET.SubElement(suite, "testcase", classname=classname, name=name)
            if c.status == "fail":
                ET.SubElement(case, "failure", message=c.message, type=f"{c.kind}-failed").text = c.message
            elif c.status == "error":
                ET.SubElement(case, "error", message=c.message, type=f"{c.kind}-error").text = c.message
            elif c.status == "skipped":
                ET.SubElement(case, "skipped", message=c.message)
            else:
                ET.SubElement(case, "system-out").text = c.message
        for k in totals:
            totals[k] += counts[k]
    for k, v in totals.items():
        root.set(k, str(v))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
