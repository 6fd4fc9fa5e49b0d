"""Validates sealtrail's OCSF export with the ocsf-emitter package (PyPI), not a schema of ours.

Usage: python ci/ocsf_validate.py FILE [FILE ...]   (one OCSF event per line; '-' is stdin)

Each line is validated as the OCSF 1.5.0 class its class_uid names: ocsf-emitter's Pydantic
model of that class (every required field, every type and enum), then its invariants
(category_uid, type_uid = class_uid * 100 + activity_id, class and category names, the
pinned schema version). The models accept fields they do not declare, so this script also
fails any attribute a declared object does not have (outside `unmapped`, which is free
form): a misspelt attribute would otherwise pass unseen. Exit status 0 when every line passes.
"""

import json
import sys

from pydantic import BaseModel

import ocsf_emitter
from ocsf_emitter import _models as models
from ocsf_emitter import defaults

FREE_FORM = {"unmapped", "data"}


def undeclared(model, path):
    """The attributes of `model` (and the models inside it) that their class does not declare."""
    found = []
    extra = model.model_extra or {}
    for name in extra:
        found.append(f"{path}.{name}" if path else name)
    for name in type(model).model_fields:
        if name in FREE_FORM:
            continue
        value = getattr(model, name)
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, BaseModel):
                found.extend(undeclared(item, f"{path}.{name}" if path else name))
    return found


def check(event):
    spec = defaults.class_spec_by_uid(int(event["class_uid"]))
    if spec is None:
        return [f"class_uid {event['class_uid']} is not an OCSF class ocsf-emitter knows"]
    model = getattr(models, spec.model_name)
    try:
        instance = model.model_validate(event)
        ocsf_emitter.validate(instance)
    except Exception as error:  # the validator's errors name the fields
        return [str(error)]
    return [f"undeclared attribute {name}" for name in undeclared(instance, "")]


def main(paths):
    failures = 0
    checked = 0
    for path in paths:
        stream = sys.stdin if path == "-" else open(path, encoding="utf-8")
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            checked += 1
            problems = check(json.loads(line))
            if problems:
                failures += 1
                if failures <= 20:
                    print(f"{path}:{number}: " + "; ".join(problems))
    print(f"ocsf-emitter {ocsf_emitter.__version__}: {checked} events checked, {failures} invalid")
    return 1 if failures or not checked else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["-"]))
