"""Schemathesis hooks for sealtrail's API run (ci/schemathesis.sh).

A batch (`POST /v1/events/batch`) is refused element by element: its array items are the
Event schema, and an element that breaks it is rejected in its own result (status 4xx) while
the others are committed, so the request as a whole is answered 200. For a schema-violating
batch, that per-element rejection is the refusal schemathesis looks for; a 200 in which no
element was rejected is still a failure.

A few of the API's rules cannot be stated in JSON Schema, because they involve several
parameters at once, the log's current state, or every value nested anywhere in `details`:
`seq` below `size`, `from` not after `to` (before it, for timelines and gaps), a size no larger than the committed log, a cursor
the server issued, one idempotency key rather than two different ones, numbers that an IEEE
754 double holds exactly, `details` at most 8 levels deep, a canonical entry of at most
65,535 bytes, an `occurred_at` no further ahead of the server's clock than it allows. The document states them in words. A request that satisfies the document's
schemas can still break one, and the server rightly refuses it with a 4xx naming the field
and the rule. Such a refusal is not a failure; every other refusal of a schema-valid request
still is. Nothing else is relaxed: responses, status codes, content types and the rejection
of schema-violating requests are all checked as usual.
"""

import schemathesis

# (method, path) -> the (field, rule) pairs of such refusals, exactly as the server names
# them; a field ending in `*` stands for every field it begins.
UNSTATABLE_RULES = {
    ("GET", "/v1/events"): {
        ("to", "range"),  # from later than to
        ("wait_for_seq", "range"),  # a seq the log does not hold yet
        ("cursor", "cursor"),  # not a cursor the server issued, or from the other order
    },
    ("GET", "/v1/export"): {
        ("to", "range"),  # from later than to
        ("cursor", "cursor"),  # not a cursor the server issued, or from the other order
    },
    ("GET", "/v1/alerts"): {
        ("to", "range"),  # from later than to
        ("cursor", "cursor"),  # not a cursor the server issued, or from the other order
    },
    ("GET", "/v1/log/proof/inclusion"): {
        ("seq", "range"),  # seq not below size
        ("size", "range"),  # beyond the committed log
    },
    ("GET", "/v1/log/proof/consistency"): {
        ("from", "range"),  # from larger than to
        ("to", "range"),  # beyond the committed log
    },
    ("GET", "/v1/verify"): {
        ("from_seq", "range"),  # after to_seq, or beyond the end of the log
    },
    ("GET", "/v1/timeline"): {
        ("from", "range"),  # from not before to
        ("from", "max_range"),  # a window longer than 31 days
        ("bucket", "max_buckets"),  # more buckets than one answer holds
    },
    ("GET", "/v1/gaps"): {
        ("from", "range"),  # from not before to
        ("to", "range"),  # no window of 24 hours before to
        ("from", "max_range"),  # a window longer than 31 days
    },
    ("GET", "/v1/gaps/report"): {
        ("from", "range"),  # from not before to
        ("from", "max_range"),  # a window longer than 31 days
    },
    ("GET", "/v1/log/seals"): {
        ("from", "range"),  # from after to
        ("from", "format"),  # YYYY-MM-DD that is no calendar day (2026-02-30)
        ("to", "format"),
    },
    ("GET", "/v1/log/seals/{date}"): {
        ("date", "format"),  # YYYY-MM-DD that is no calendar day
    },
    ("GET", "/v1/reports/daily-activity"): {
        ("from", "range"),  # from not before to
    },
    ("GET", "/v1/reports/security-incidents"): {
        ("from", "range"),  # from not before to
    },
    ("GET", "/v1/reports/record-access"): {
        ("from", "range"),  # from not before to
    },
    ("GET", "/v1/reports/disclosures"): {
        ("from", "range"),  # from not before to
    },
    ("GET", "/v1/reports/user-activity"): {
        ("from", "range"),  # from not before to
    },
    ("GET", "/v1/reports/completeness"): {
        ("from", "range"),  # from not before to
        ("from", "max_range"),  # a window longer than 31 days
    },
    ("POST", "/v1/events"): {
        ("Idempotency-Key", "conflict"),  # header and body name different keys
        # The key already names a different event: schemathesis reuses its generated keys
        # for different bodies, which the API refuses as it must (422, naming the original).
        ("Idempotency-Key", "idempotency_conflict"),
        ("idempotency_key", "idempotency_conflict"),
        ("details*", "number_precision"),  # a number no double holds exactly
        ("details*", "max_depth"),  # nested more than 8 levels
        ("details*", "max_items"),  # more than 256 keys or items in a nested level
        ("", "max_size"),  # the canonical entry is larger than 65,535 bytes
        ("occurred_at", "future"),  # later than the server's clock plus max_future_skew_secs
    },
}


BATCH = ("POST", "/v1/events/batch")


def rejects_an_element(response):
    """Whether a batch's answer rejects at least one of its elements in its own result."""
    if response.status_code != 200:
        return False
    try:
        results = response.json()
    except ValueError:
        return False
    return isinstance(results, list) and any(
        isinstance(r, dict) and isinstance(r.get("status"), int) and 400 <= r["status"] < 500
        for r in results
    )


@schemathesis.hook
def filter_failure(ctx, failure, case, response):
    """Keeps every failure except a schema-valid request refused by one of the rules above,
    and a schema-violating batch whose offending element was rejected in its own result."""
    operation = (case.operation.method.upper(), case.operation.path)
    if failure.code == "ST201" and operation == BATCH:
        return not rejects_an_element(response)
    if failure.code != "ST202":
        return True
    rules = UNSTATABLE_RULES.get(operation)
    if not rules or not 400 <= response.status_code < 500:
        return True
    try:
        error = response.json()
    except ValueError:
        return True
    if not isinstance(error, dict) or not isinstance(error.get("field"), str):
        return True
    field, rule = error["field"], error.get("rule")
    return not any(
        rule == wanted and (field == pattern or (pattern.endswith("*") and field.startswith(pattern[:-1])))
        for pattern, wanted in rules
    )
