#!/usr/bin/env python3
"""Checks HPTHammer's exports with the kernel world's own tools (the venv of
scripts/ensure-pytools.sh): prints a JSON summary on stdout, exits 1 with the reason when the
file does not pass.
  check-exports.py kcidb FILE   KCIDB I/O data, validated by kcidb_io's schema v5.3 exactly
  check-exports.py junit FILE   junit.xml parsed by junitparser; every suite's tests, failures,
                                errors and skipped must equal what its cases hold
"""
import json
import sys


def kcidb(path):
    import kcidb_io
    data = json.load(open(path))
    schema = kcidb_io.schema.V5_3
    try:
        schema.validate_exactly(data)
    except Exception as e:  # jsonschema.ValidationError, with the path into the document
        sys.exit(f"{path}: not valid KCIDB {schema}: {getattr(e, 'message', e)} at "
                 f"{'/'.join(str(p) for p in getattr(e, 'absolute_path', []))}")
    if not kcidb_io.schema.LATEST.is_valid(data):
        sys.exit(f"{path}: not valid for kcidb_io's latest schema {kcidb_io.schema.LATEST}")
    print(json.dumps({
        "schema": str(schema), "latest": str(kcidb_io.schema.LATEST),
        "checkouts": len(data.get("checkouts", [])), "builds": len(data.get("builds", [])),
        "tests": len(data.get("tests", [])),
        "statuses": sorted({t.get("status", "") for t in data.get("tests", [])}),
        "origins": sorted({o["origin"] for k in ("checkouts", "builds", "tests")
                           for o in data.get(k, [])}),
    }))


def junit(path):
    from junitparser import JUnitXml, TestSuite, Failure, Error, Skipped
    xml = JUnitXml.fromfile(path)
    suites = [xml] if isinstance(xml, TestSuite) else list(xml)
    if not suites:
        sys.exit(f"{path}: no test suite")
    cases = []
    for suite in suites:
        counted = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for case in suite:
            if not case.name:
                sys.exit(f"{path}: suite {suite.name!r}: a test case without a name")
            float(case.time or 0)
            kinds = [type(r) for r in case.result]
            result = ("failure" if Failure in kinds else "error" if Error in kinds
                      else "skipped" if Skipped in kinds else "passed")
            counted["tests"] += 1
            counted[{"failure": "failures", "error": "errors", "skipped": "skipped"}.get(
                result, "tests")] += result != "passed"
            cases.append({"suite": suite.name, "name": case.name,
                          "classname": case.classname, "result": result,
                          "message": next((r.message for r in case.result if r.message), None)})
        for key, n in counted.items():
            declared = getattr(suite, key)
            if declared is not None and int(declared) != n:
                sys.exit(f"{path}: suite {suite.name!r} declares {key}={declared}, "
                         f"its cases hold {n}")
        float(suite.time or 0)
    print(json.dumps({"suites": len(suites), "cases": cases}))


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("kcidb", "junit"):
        sys.exit(__doc__)
    {"kcidb": kcidb, "junit": junit}[sys.argv[1]](sys.argv[2])
