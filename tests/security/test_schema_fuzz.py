"""A bounded schemathesis run over the app's OpenAPI schema, as admin and as agent: no response is a server error.

Every operation gets ``EXAMPLES`` requests, schema-conforming and schema-violating ones, generated deterministically
(hypothesis derandomized, no example database), sent over real HTTP to the app under uvicorn. Each request carries a
fresh bearer token of its role, opened straight in the database for a re-activated user, so that requests which log
out, deactivate or re-password that user do not end the run. The only 5xx allowed is 503 ``telephony_down``: the
test runs no bridge workers, and call control says so by design.
"""
from __future__ import annotations

import hypothesis.strategies as st
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings as hsettings
from requests.exceptions import InvalidHeader, InvalidURL
from schemathesis import GenerationMode
from sqlalchemy import select

from domain import accounts
from domain.db import session_scope
from domain.models import User
from tests.security.live_server import serve

pytestmark = pytest.mark.slow
EXAMPLES = 12
EXPECTED_5XX = {(503, "telephony_down")}


def _token(engine, username: str) -> str:
    with session_scope(engine) as s:
        user = s.scalar(select(User).where(User.username == username))
        user.active = True
        token, _ = accounts.open_session(s, user, "bearer")
    return token


def _code(response) -> str:
    try:
        return response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return ""


@pytest.mark.parametrize("username", ["admin", "agent"])
def test_no_operation_answers_with_a_server_error(app, engine, username):
    schema = schemathesis.openapi.from_dict(app.openapi())
    failures: list[str] = []
    operations = 0
    with serve(app) as base:
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1
            strategy = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                                 operation.as_strategy(GenerationMode.NEGATIVE))

            @hsettings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                       suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
            @given(case=strategy)
            def run(case):
                try:
                    response = case.call(base_url=base, timeout=300,
                                         headers={"Authorization": f"Bearer {_token(engine, username)}"})
                except (InvalidHeader, InvalidURL):
                    return  # the HTTP client refuses to send it (a CR in a header): nothing reached the server
                if response.status_code >= 500 and (response.status_code, _code(response)) not in EXPECTED_5XX:
                    failures.append(f"{operation.label}: {response.status_code} {response.text[:200]} for "
                                    f"path={case.path_parameters} query={case.query} body={str(case.body)[:200]}")

            run()
    assert operations >= 70, "the schema lists the app's operations"
    assert failures == [], "\n".join(failures[:20])
