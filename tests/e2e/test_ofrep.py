"""The OpenFeature SDK with the real OFREP provider against a real ``flagd serve`` process."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from tests.e2e.conftest import FlagdServer

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(flagd_embedded: FlagdServer) -> FlagdServer:
    s = flagd_embedded
    s.create_flag(
        "new-checkout",
        {
            "groups": [
                {
                    "properties": [
                        {"key": "country", "type": "person", "value": ["DE", "FR"], "operator": "exact"}
                    ],
                    "rollout_percentage": 100,
                }
            ]
        },
    )
    s.create_flag(
        "theme",
        {
            "groups": [{"properties": [], "rollout_percentage": 100}],
            "multivariate": {
                "variants": [
                    {"key": "dark", "rollout_percentage": 50},
                    {"key": "light", "rollout_percentage": 50},
                ]
            },
            "payloads": {"dark": json.dumps({"bg": "#000"})},
        },
    )
    s.create_flag("retired", active=False)
    return s


@pytest.fixture
def client(server: FlagdServer) -> Iterator[OpenFeatureClient]:
    provider = OFREPProvider(
        server.url, headers_factory=lambda: {"Authorization": f"Bearer {server.project_token}"}
    )
    api.set_provider(provider, domain="flagd-e2e")
    try:
        yield api.get_client(domain="flagd-e2e")
    finally:
        api.clear_providers()
        provider.session.close()


def test_boolean_flag_follows_attributes(client: OpenFeatureClient) -> None:
    """Context attributes act as person properties: on in Germany, off in Spain, with matching reasons."""
    de = client.get_boolean_details("new-checkout", False, EvaluationContext("u1", {"country": "DE"}))
    es = client.get_boolean_details("new-checkout", True, EvaluationContext("u1", {"country": "ES"}))
    assert (de.value, de.reason) == (True, Reason.TARGETING_MATCH)
    assert (es.value, es.reason) == (False, Reason.DEFAULT)
    assert de.flag_metadata["reasonCode"] == "condition_match"


def test_string_flag_returns_the_variant_that_flagd_picks(
    server: FlagdServer, client: OpenFeatureClient
) -> None:
    """A multivariate flag resolves as a string to the same variant /flags gives, reason SPLIT."""
    seen = set()
    for n in range(20):
        user = f"user-{n}"
        details = client.get_string_details("theme", "none", EvaluationContext(user))
        assert details.value == server.flags(user)["flags"]["theme"]["variant"]
        assert details.reason == Reason.SPLIT
        seen.add(details.value)
        if details.value == "dark":
            assert json.loads(str(details.flag_metadata["payload"])) == {"bg": "#000"}
    assert seen == {"dark", "light"}


def test_disabled_flag(client: OpenFeatureClient) -> None:
    """An inactive flag resolves false with reason DISABLED."""
    details = client.get_boolean_details("retired", True, EvaluationContext("u1"))
    assert (details.value, details.reason) == (False, Reason.DISABLED)


def test_unknown_flag_falls_back_with_flag_not_found(client: OpenFeatureClient) -> None:
    """A missing flag gives the caller's default and FLAG_NOT_FOUND."""
    details = client.get_boolean_details("nope", True, EvaluationContext("u1"))
    assert details.value is True
    assert details.error_code == ErrorCode.FLAG_NOT_FOUND


def test_missing_targeting_key_is_reported(client: OpenFeatureClient) -> None:
    """Without a targeting key the default is used and the error says why."""
    details = client.get_boolean_details("new-checkout", False, EvaluationContext(None, {"country": "DE"}))
    assert details.value is False
    assert details.error_code == ErrorCode.TARGETING_KEY_MISSING


def test_type_mismatch_is_caught_by_the_sdk(client: OpenFeatureClient) -> None:
    """Asking a boolean flag for a string yields the default with TYPE_MISMATCH."""
    details = client.get_string_details(
        "new-checkout", "fallback", EvaluationContext("u1", {"country": "DE"})
    )
    assert details.value == "fallback"
    assert details.error_code == ErrorCode.TYPE_MISMATCH


def test_wrong_token_falls_back_to_defaults(server: FlagdServer) -> None:
    """A provider with an unknown token gets the running server's 401 and every evaluation returns the
    default (the right token, on the same server, gets the flag)."""
    url = f"{server.url}/ofrep/v1/evaluate/flags/new-checkout"
    body = {"context": {"targetingKey": "u1", "country": "DE"}}
    assert httpx.post(url, json=body, headers={"Authorization": "Bearer phc_wrong"}).status_code == 401
    right = httpx.post(url, json=body, headers={"Authorization": f"Bearer {server.project_token}"})
    assert right.status_code == 200
    assert right.json()["value"] is True
    provider = OFREPProvider(server.url, headers_factory=lambda: {"Authorization": "Bearer phc_wrong"})
    api.set_provider(provider, domain="flagd-e2e-bad")
    try:
        details = api.get_client(domain="flagd-e2e-bad").get_boolean_details(
            "new-checkout", False, EvaluationContext("u1", {"country": "DE"})
        )
        assert details.value is False
        assert details.error_code == ErrorCode.GENERAL
    finally:
        api.clear_providers()
        provider.session.close()
