"""Property-based run of the whole OpenAPI schema (schemathesis, in-process against the ASGI app,
real Redis behind it): whatever the generated request, valid or deliberately invalid, the API
never answers 5xx and every answer matches the schema. Bounded: a few examples per operation.

(Hypothesis is driven per operation through ``as_strategy`` rather than schemathesis's pytest
plugin, whose lazy-fixture loader reads a pytest internal that pytest 9 removed.)
"""

from __future__ import annotations

from typing import Any

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from services.common.embedded import EmbeddedRedis
from services.feedback.tokens import add_user
from tests.integration.test_feedback_support import make_app, seed_alert

EXAMPLES = 100  # per operation and generation mode (issue 14: at least 100)
# Rules JSON Schema cannot state (min_magnitude <= max_magnitude, some strategy ratio > 0):
# schema-valid interest documents may rightly be refused there, and only there.
CROSS_FIELD_RULES = {"PUT /v1/me/interest"}
# Invalid requests must never cause a 5xx and their answers must match the schema; whether each
# is refused is not checked: unknown query parameters are ignored (as HTTP servers do), and the
# token added to every call undoes negative cases that drop the Authorization header.
LENIENT = [negative_data_rejection]
# A live stream answers forever (or 503 here, with no Kafka): tests/integration/test_desk_api.py.
NEVER_ENDS = {"GET /v1/me/stream"}
PARAMETERLESS = {
    "GET /healthz",
    "GET /readyz",
    "GET /v1/me",
    "GET /v1/me/interest",
    "GET /v1/classes",
}


@pytest.mark.slow  # ~30 s on 2 shared cores
def test_no_server_errors_and_answers_match_the_schema(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    headers = {"Authorization": f"Bearer {add_user(redis_client, 'fuzz')}"}
    for alert_id in ("0", "1", "42"):  # ids hypothesis tends to try, so some labels succeed
        seed_alert(redis_client, alert_id, delivered_to=["fuzz"])
    app, _ = make_app(redis_server.url)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [
        op
        for op in (result.ok() for result in schema.get_all_operations())  # type: ignore[union-attr]
        if op.label not in NEVER_ENDS
    ]
    assert len(operations) >= 12
    seen: dict[str, set[int]] = {}

    def run(operation: Any, mode: GenerationMode) -> None:
        excluded = list(LENIENT) if mode is GenerationMode.NEGATIVE else []
        if operation.label in CROSS_FIELD_RULES:
            excluded.append(positive_data_acceptance)

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            response = case.call(headers={**(case.headers or {}), **headers})
            assert response.status_code < 500, (case.method, case.path, response.text)
            case.validate_response(response, excluded_checks=excluded)
            seen.setdefault(operation.label, set()).add(response.status_code)

        check()

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                run(operation, mode)
            except Unsatisfiable:
                # No invalid request exists for an operation without parameters or body.
                assert mode is GenerationMode.NEGATIVE, operation.label
                assert operation.label in PARAMETERLESS, operation.label
    # Generated ids hit a seeded alert only by luck (hypothesis favours string constants it finds
    # in the code base, which change as the code grows): one known-good label, checked the same.
    label = next(op for op in operations if op.label == "POST /v1/feedback")
    good = label.Case(body={"alert_id": "1", "label": "sn"}, media_type="application/json")
    response = good.call(headers=headers)
    good.validate_response(response)
    seen["POST /v1/feedback"].add(response.status_code)
    # The run reached the handlers, not only the validation layer.
    assert 201 in seen["POST /v1/feedback"] or 200 in seen["POST /v1/feedback"]
    assert 200 in seen["GET /v1/me"]
