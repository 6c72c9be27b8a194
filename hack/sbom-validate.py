#!/usr/bin/env python3
"""Validates an SBOM the way a site's security team would read it, offline:

    sbom-validate.py cyclonedx FILE   # CycloneDX 1.6 JSON schema (cyclonedx-python-lib)
    sbom-validate.py spdx FILE        # SPDX 2.3 JSON, parsed and validated (spdx-tools)

Prints "valid" and exits 0, or prints every problem and exits 1. Runs in the venv
hack/setup-host.sh makes (/opt/airbin-sbom).
"""
import sys


def cyclonedx(path):
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    with open(path, encoding="utf-8") as f:
        error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(f.read())
    return [] if error is None else [str(error)]


def spdx(path):
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    document = parse_file(path)
    return [m.validation_message for m in validate_full_spdx_document(document, "SPDX-2.3")]


def main():
    kind, path = sys.argv[1], sys.argv[2]
    problems = {"cyclonedx": cyclonedx, "spdx": spdx}[kind](path)
    for problem in problems:
        print(problem)
    print("valid" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
