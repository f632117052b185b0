"""Log-in attempts are rate-limited per address: the site's form and the API's token endpoint."""
import pytest
from django.test import Client
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_per_minute(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"export": "20/min", "login": "2/min"}}


def test_login_form_refuses_a_third_attempt_without_checking_the_password(reviewer, two_per_minute):
    client = Client()
    for _ in range(2):
        response = client.post("/login/", {"username": "rita", "password": "wrong"})
        assert response.status_code == 200 and "didn't match" in response.content.decode()
    refused = client.post("/login/", {"username": "rita", "password": "pw"})  # even the right password
    assert refused.status_code == 429 and "Too many log-in attempts" in refused.content.decode()
    assert "_auth_user_id" not in client.session
    other_address = Client(REMOTE_ADDR="10.0.0.9")
    assert other_address.post("/login/", {"username": "rita", "password": "pw"}).status_code == 302
    assert client.get("/login/").status_code == 200  # looking at the form is not an attempt


def test_token_endpoint_gives_the_token_and_is_throttled(reviewer, two_per_minute):
    client = APIClient()
    first = client.post("/api/auth/token/", {"username": "rita", "password": "pw"}, format="json")
    assert first.status_code == 200 and len(first.json()["token"]) == 64  # knox: 32 random bytes in hex
    assert first.json()["expiry"]
    wrong = client.post("/api/auth/token/", {"username": "rita", "password": "no"}, format="json")
    assert wrong.status_code == 400
    refused = client.post("/api/auth/token/", {"username": "rita", "password": "pw"}, format="json")
    assert refused.status_code == 429 and refused.json()["code"] == "throttled"
    token_client = APIClient()
    token_client.credentials(HTTP_AUTHORIZATION=f"Token {first.json()['token']}")
    assert token_client.get("/api/datasets/").status_code == 200
