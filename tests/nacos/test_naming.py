"""Discovery: cached lists, the last good list while Nacos is down, weighted choice, failover calls."""

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app import create_app
from app.nacos import call_service as call_by_name
from app.nacos import choose_instance, instances
from app.nacos.discovery import Discovery, NoInstanceAvailable, call_service
from tests.helpers import settings_for_tests
from tests.nacos.helpers import dead_address, make_client, make_registration, wait_for


@pytest.fixture
def discovery(nacos) -> Discovery:
    return Discovery(client=make_client(nacos.address), group="DEFAULT_GROUP")


def register(nacos, *, service="user-service", **fields):
    make_client(nacos.address).register(make_registration(service_name=service, **fields))


def lists(nacos, service: str = "user-service") -> int:
    return len([r for r in nacos.requests_to("GET", "/instance/list") if r.params["serviceName"] == service])


def test_lists_are_cached_for_the_servers_cache_time_and_refreshed_in_the_background(nacos, discovery):
    nacos.cache_millis = 500
    register(nacos, port=1)

    assert [i.port for i in discovery.instances("user-service")] == [1]
    assert [i.port for i in discovery.instances("user-service")] == [1]
    assert lists(nacos) == 1

    register(nacos, port=2)
    wait_for(lambda: lists(nacos) >= 2, timeout=3)  # the refresher, not a caller, asked again
    assert sorted(i.port for i in discovery.instances("user-service")) == [1, 2]


def test_names_only_looked_up_are_not_refreshed_but_called_ones_are(nacos, discovery, peer):
    nacos.cache_millis = 200
    register(nacos, port=peer)
    looked_up = [f"looked-up-{n}" for n in range(20)]
    for name in looked_up:
        assert discovery.instances(name, keep_fresh=False) == []

    call_service(discovery, "user-service", "GET", "/")
    wait_for(lambda: lists(nacos) >= 3, timeout=5)  # the refresher runs, and keeps user-service fresh

    assert [lists(nacos, name) for name in looked_up] == [1] * len(looked_up)


def test_the_cache_is_bounded_and_lookups_do_not_push_out_called_services(nacos, peer):
    discovery = Discovery(client=make_client(nacos.address), group="DEFAULT_GROUP", max_cached=5)
    register(nacos, port=peer)
    call_service(discovery, "user-service", "GET", "/")
    for n in range(20):
        discovery.instances(f"looked-up-{n}", keep_fresh=False)

    assert len(discovery._cache) == 5
    call_service(discovery, "user-service", "GET", "/")
    assert lists(nacos) == 1  # still cached
    discovery.instances("looked-up-19", keep_fresh=False)
    assert lists(nacos, "looked-up-19") == 1  # the most recent lookups are kept
    discovery.instances("looked-up-0", keep_fresh=False)
    assert lists(nacos, "looked-up-0") == 2  # the least recent went


def test_the_last_good_list_is_served_while_nacos_is_down(nacos, discovery, caplog):
    nacos.cache_millis = 100
    register(nacos, port=1)
    discovery.instances("user-service")
    nacos.stop()
    time.sleep(0.2)

    for _ in range(3):
        assert [i.port for i in discovery.instances("user-service")] == [1]
    assert sum("last known instances" in str(r.msg) for r in caplog.records) == 1


def test_nothing_cached_and_nacos_down_is_no_instance(nacos, discovery):
    nacos.stop()
    with pytest.raises(NoInstanceAvailable):
        discovery.instances("user-service")


def test_choice_follows_weights_and_skips_unhealthy_disabled_and_weightless(nacos, discovery):
    register(nacos, port=1, weight=1.0)
    register(nacos, port=2, weight=3.0)
    register(nacos, port=3, weight=0.0)
    register(nacos, port=4, weight=5.0)
    nacos.instances[next(k for k in nacos.instances if k[-1] == 4)].enabled = False

    picks = Counter(discovery.choose("user-service").port for _ in range(4000))

    assert set(picks) == {1, 2}
    assert 0.70 < picks[2] / 4000 < 0.80


def test_no_healthy_instance(nacos, discovery):
    with pytest.raises(NoInstanceAvailable):
        discovery.choose("nobody")


@pytest.fixture
def peer():
    """A real HTTP server standing in for an instance of another service."""

    class Hello(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"hello")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_call_service_tries_another_instance_when_one_is_down(nacos, discovery, peer):
    register(nacos, port=peer)
    register(nacos, port=int(dead_address().split(":")[1]), weight=100.0)  # chosen first, nearly always

    for _ in range(5):
        response = call_service(discovery, "user-service", "GET", "/anything")
        assert response.status_code == 200 and response.text == "hello"


def test_call_service_gives_up_when_no_instance_answers(nacos, discovery):
    for _ in range(2):
        register(nacos, port=int(dead_address().split(":")[1]))
    with pytest.raises(NoInstanceAvailable, match="answered"):
        call_service(discovery, "user-service", "GET", "/")


def test_application_code_calls_a_service_by_name(nacos, peer, database_url):
    register(nacos, port=peer)
    app = create_app(settings_for_tests(database_url, NACOS_ENABLED=True, NACOS_SERVER_ADDR=nacos.address))
    with app.app_context():
        assert [i.port for i in instances("user-service")] == [peer]
        assert choose_instance("user-service").port == peer
        assert call_by_name("user-service", "GET", "/hello").text == "hello"
