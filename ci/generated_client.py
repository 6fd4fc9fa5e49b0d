"""Sends events to a running sealtrail through a Python client generated from its OpenAPI
document by openapi-python-client (ci/generated_client.sh), using only the generated typed
models: one event, the same event again with its idempotency key, and a typed batch of three,
then reads one back. Fails loudly, naming what differed, when the client cannot be used that
way or an answer is not what the API promises.

Usage: generated_client.py BASE_URL TOKEN DIR  (DIR holds the generated `sealtrail_client`)
"""

import sys
import typing
import uuid


def fail(message):
    sys.exit(f"generated client: {message}")


def check(condition, message):
    if not condition:
        fail(message)


base, token, package_dir = sys.argv[1:4]
sys.path.insert(0, package_dir)

from sealtrail_client import AuthenticatedClient  # noqa: E402
from sealtrail_client.api.events import get_event, post_batch, post_event  # noqa: E402
from sealtrail_client.models import (  # noqa: E402
    Activity,
    Actor,
    ActorType,
    BatchResult,
    Context,
    Event,
    EventOutcome,
    EventWithProof,
    Receipt,
    Target,
)

# The batch body is a list of the one Event model: an `anyOf` in the document made it a list
# of an untyped union, to which an Event cannot be given.
body_type = typing.get_type_hints(post_batch.sync_detailed)["body"]
check(body_type == list[Event], f"post_batch takes {body_type}, not list[Event]")
check(
    typing.get_type_hints(post_event.sync_detailed)["body"] is Event,
    "post_event does not take an Event",
)

run = uuid.uuid4().hex[:12]


def event(n):
    return Event(
        action="patient.record.read",
        activity=Activity.READ,
        outcome=EventOutcome.SUCCESS,
        actor=Actor(id=f"u-{n}", type_=ActorType.USER),
        targets=[Target(type_="patient", id=f"p-{n}")],
        context=Context(ip="10.1.2.3"),
    )


client = AuthenticatedClient(base_url=base, token=token, raise_on_unexpected_status=True)
with client:
    # One event, with an idempotency key; sent twice, it is one entry.
    key = f"generated-client-{run}"
    first = post_event.sync_detailed(client=client, body=event(0), idempotency_key=key)
    check(first.status_code == 201, f"POST /v1/events answered {first.status_code}: {first.content!r}")
    receipt = first.parsed
    check(isinstance(receipt, Receipt), f"POST /v1/events gave {receipt!r}, not a Receipt")
    check(receipt.seq >= 0 and len(receipt.event_hash) == 64, f"a receipt without a seq or hash: {receipt!r}")
    again = post_event.sync_detailed(client=client, body=event(0), idempotency_key=key)
    check(again.status_code == 200, f"the retry answered {again.status_code}, not 200")
    check(again.parsed == receipt, f"the retry's receipt {again.parsed!r} differs from {receipt!r}")

    # A typed batch: each element gets its own result, in order, with consecutive seqs.
    batch = [event(n) for n in range(1, 4)]
    answer = post_batch.sync_detailed(client=client, body=batch)
    check(answer.status_code == 200, f"POST /v1/events/batch answered {answer.status_code}: {answer.content!r}")
    results = answer.parsed
    check(
        isinstance(results, list) and all(isinstance(r, BatchResult) for r in results),
        f"the batch gave {results!r}, not a list of BatchResult",
    )
    check(len(results) == len(batch), f"{len(results)} results for {len(batch)} events")
    for n, result in enumerate(results):
        check(result.index == n, f"result {n} has index {result.index}")
        check(result.status == 201, f"event {n} of the batch got {result.status}: {result.error!r}")
        check(result.seq == receipt.seq + 1 + n, f"event {n} of the batch got seq {result.seq}")

    # The last one reads back as it was sent.
    found = get_event.sync_detailed(client=client, id=str(results[-1].id))
    check(found.status_code == 200, f"GET /v1/events/{{id}} answered {found.status_code}")
    check(isinstance(found.parsed, EventWithProof), f"GET /v1/events/{{id}} gave {found.parsed!r}")
    stored = found.parsed.event
    check(stored.actor.id == "u-3" and stored.seq == results[-1].seq, f"read back {stored!r}")

print(
    f"generated client: one event (seq {receipt.seq}, its retry the same receipt) and a typed "
    f"batch of {len(results)} (seqs {results[0].seq}-{results[-1].seq}) sent and read back"
)
