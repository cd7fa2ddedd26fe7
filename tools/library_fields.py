"""Record the fields of the library classes whose keywords config blocks hold (molmix.library_settings).

Run after upgrading transformers, TRL or PEFT: `.venv/bin/python tools/library_fields.py`. It writes
workflow/molmix/library_fields.json with the library versions it was made from; config validation
reads the lists from there while those versions are installed, and tests/test_library_settings.py
fails while the file and the installed classes differ.
"""

import json
import os

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from molmix.library_settings import CLASSES, FIELDS_FILE, class_fields, installed_versions  # noqa: E402


def current() -> dict:
    versions = installed_versions()
    return {
        "versions": {library: versions[library] for library in sorted(versions)},
        "fields": {name: class_fields(name) for name in sorted(CLASSES)},
    }


if __name__ == "__main__":
    FIELDS_FILE.write_text(json.dumps(current(), indent=1) + "\n")
    print(f"wrote {FIELDS_FILE}")
