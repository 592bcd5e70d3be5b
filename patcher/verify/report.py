"""verify's output formats: the terminal table, JSON and JUnit XML. All carry the same results."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from .results import FAIL, PASS, SKIP

MARKS = {PASS: "ok", FAIL: "FAIL", SKIP: "skip"}


def table(results, width=None) -> str:
    """One row per result: subject, check, status, seconds, detail; passing rows cut at ``width`` if given."""
    rows = [("YAML / file", "check", "status", "time", "detail")]
    rows += [
        (r.subject, r.check, MARKS[r.status], f"{r.seconds:.1f}s" if r.seconds else "", first_line(r.detail))
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for row in rows:
        cells = [cell.ljust(w) for cell, w in zip(row, widths)]
        line = "  ".join([*cells, row[4]])
        lines.append(line if row[2] == MARKS[FAIL] or not width else line[:width])
    return "\n".join(lines)


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def summary(outcome) -> str:
    counts = {s: sum(r.status == s for r in outcome.results) for s in (PASS, FAIL, SKIP)}
    verdict = "FAILED" if counts[FAIL] else "passed"
    return (
        f"verify {verdict}: {counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIP]} skipped "
        f"in {outcome.seconds:.1f} s (ultralytics {outcome.ultralytics} at {outcome.tree})"
    )


def failures(outcome) -> str:
    """Each failure in full: the YAML, the check and the whole error."""
    return "\n".join(f"FAILED {r.subject} :: {r.check}: {r.detail}" for r in outcome.results if r.status == FAIL)


def to_json(outcome) -> str:
    return json.dumps(outcome.to_dict(), indent=2)


def to_junit(outcome) -> str:
    """JUnit XML: one testsuite per YAML (or file), one testcase per check."""
    suites = ET.Element("testsuites", name="bbpatch verify", time=f"{outcome.seconds:.2f}")
    by_subject: dict[str, list] = {}
    for r in outcome.results:
        by_subject.setdefault(r.subject, []).append(r)
    for subject, results in by_subject.items():
        suite = ET.SubElement(
            suites, "testsuite", name=subject, tests=str(len(results)),
            failures=str(sum(r.status == FAIL for r in results)), skipped=str(sum(r.status == SKIP for r in results)),
            time=f"{sum(r.seconds for r in results):.2f}",
        )  # fmt: skip
        for r in results:
            case = ET.SubElement(suite, "testcase", classname=subject, name=r.check, time=f"{r.seconds:.2f}")
            if r.status == FAIL:
                ET.SubElement(case, "failure", message=first_line(r.detail)).text = r.data.get("traceback") or r.detail
            elif r.status == SKIP:
                ET.SubElement(case, "skipped", message=first_line(r.detail))
            else:
                ET.SubElement(case, "system-out").text = r.detail
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
