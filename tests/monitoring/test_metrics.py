"""/monitoring/metrics in one process: formats, labels, token."""

import re
import subprocess

import pytest

from app.core.metrics import STANDARD_METHODS
from app.extensions import current_settings
from tests.helpers import assert_error, bearer, login, outside_tool


def sample(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_prometheus_text_by_default_with_route_templates(client, user_headers):
    before = (
        sample(
            client.get("/monitoring/metrics").get_data(as_text=True),
            "http_requests_total",
            route="/api/v1/users/<int:user_id>",
            status="404",
        )
        or 0
    )
    for user_id in (91, 92, 93):
        client.get(f"/api/v1/users/{user_id}", headers=user_headers)

    response = client.get("/monitoring/metrics")
    text = response.get_data(as_text=True)

    assert response.status_code == 200 and response.mimetype == "text/plain"
    after = sample(text, "http_requests_total", method="GET", route="/api/v1/users/<int:user_id>", status="404")
    assert after - before == 3
    assert "/api/v1/users/91" not in text  # never the raw path
    labels = {"method": "GET", "route": "/api/v1/users/<int:user_id>", "status": "404"}
    assert sample(text, "http_request_duration_seconds_count", **labels) >= 3
    assert sample(text, "app_info", version="0.1.0") == 1
    assert sample(text, "nacos_registered") == 0
    assert sample(text, "system_memory_total_bytes") > 0
    assert sample(text, "server_process_resident_memory_bytes", role="server") > 0


def test_openmetrics_for_scrapers_that_ask_for_it(client):
    client.get("/api/v1/users")
    response = client.get("/monitoring/metrics", headers={"Accept": "application/openmetrics-text"})
    text = response.get_data(as_text=True)
    assert response.mimetype == "application/openmetrics-text"
    assert text.endswith("# EOF\n")
    assert 'http_request_duration_seconds_bucket{le="0.005",method="GET",route="/api/v1/users"' in text
    assert "trace_id" not in text  # exemplars come with tracing only (tests/tracing)


def test_unmatched_paths_share_one_label(client):
    client.get("/no/such/path/1")
    client.get("/no/such/path/2")
    text = client.get("/monitoring/metrics").get_data(as_text=True)
    assert sample(text, "http_requests_total", route="unmatched", status="404") >= 2
    assert "/no/such/path" not in text


def test_made_up_methods_share_one_label(client):
    def others() -> float:
        text = client.get("/monitoring/metrics").get_data(as_text=True)
        return sample(text, "http_requests_total", method="other", route="unmatched", status="405") or 0

    made_up = ["BREW", "FOOBAR", "X", "ABCDEFGHIJKLMNOPQRST"]
    before = others()
    for method in made_up:
        client.open("/api/v1/health/live", method=method)
        client.open("/no/such/path", method=method)
    text = client.get("/monitoring/metrics").get_data(as_text=True)

    assert others() - before == len(made_up)
    labelled = set(re.findall(r'^http_requests_total\{method="([^"]*)"', text, re.MULTILINE))
    assert labelled <= STANDARD_METHODS | {"other"}
    assert not any(f'"{method}"' in text for method in made_up)


def test_in_flight_counts_only_requests_being_answered(client):
    client.get("/api/v1/health/live")
    assert sample(client.get("/monitoring/metrics").get_data(as_text=True), "http_requests_in_flight") == 1


@pytest.mark.parametrize(("query", "headers"), [("?format=json", {}), ("", {"Accept": "application/json"})])
def test_json_for_people(client, query, headers):
    body = client.get(f"/monitoring/metrics{query}", headers=headers).get_json()
    assert set(body) == {"app", "system", "processes", "nacos"}
    assert {"cpu_percent", "memory", "disk", "load_average", "cpu_count"} <= set(body["system"])
    assert body["processes"][0]["rss_bytes"] > 0 and body["processes"][0]["threads"] >= 1


def test_unknown_format_is_422(client):
    assert_error(client.get("/monitoring/metrics?format=xml"), 422, "validation_error")


def test_an_empty_metrics_token_is_no_token(app_with):
    client = app_with(METRICS_TOKEN="").test_client()
    assert client.get("/monitoring/metrics").status_code == 200
    with client.application.app_context():
        assert current_settings().metrics.METRICS_TOKEN is None


def test_metrics_need_their_own_token_when_one_is_set(app_with, make_user):
    client = app_with(METRICS_TOKEN="scrape-me-please").test_client()
    make_user("alice")
    user_token = login(client, "alice")["access_token"]

    assert_error(client.get("/monitoring/metrics"), 401, "unauthorized")
    assert_error(client.get("/monitoring/metrics", headers=bearer(user_token)), 401, "unauthorized")
    assert_error(client.get("/monitoring/metrics", headers=bearer("wrong")), 401, "unauthorized")
    assert client.get("/monitoring/metrics", headers=bearer("scrape-me-please")).status_code == 200


def test_output_passes_promtool(client, user_headers):
    promtool = outside_tool("promtool")
    client.get("/api/v1/users/1", headers=user_headers)
    text = client.get("/monitoring/metrics").get_data()

    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=60)

    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
