"""The virtual API server: protocol, cache compatibility, validation, bounds and concurrency.

Most tests run a real uvicorn server on loopback (in a thread; one test runs `swirl-eval serve` as its own
process); request validation, which needs no socket, goes through the ASGI app with Starlette's TestClient.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from swirl_envs.errors import SwirlError
from swirl_envs.stabletoolbench import (
    VirtualAPI,
    VirtualAPIClient,
    cache_key,
    cache_location,
    fwm_simulator,
    make_server,
)
from swirl_envs.stabletoolbench.server import NO_SIMULATOR_ERROR, create_app

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def running(tmp_path):
    """Start a server in a thread; yields a factory so each test picks its simulator."""
    servers = []

    def start(**kwargs):
        server = make_server(tmp_path / "cache", **kwargs)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        servers.append((server, thread))
        return server

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def app_client(tmp_path):
    """The ASGI app in-process (no socket): fast checks of validation and routing."""
    api = VirtualAPI(tmp_path / "cache", simulator=lambda r: {"error": "", "response": "x"})
    with TestClient(create_app(api, max_body_bytes=1000)) as client:
        yield client


def _upstream_cache(root, category, tool_folder, api, entries):
    path = root / category / tool_folder / f"{api}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries, indent=4))
    return path


def test_layout_and_key_match_upstream():
    loc = cache_location("News, Media", "Investors Exchange (IEX) Trading", "IEX Short Interest List")
    assert loc.relpath().as_posix() == (
        "News_Media/investors_exchange_iex_trading_for_News_Media/iex_short_interest_list.json")
    assert loc.function == "iex_short_interest_list_for_investors_exchange_iex_trading"
    # upstream clients may send the tool already suffixed, and the api as "<api>_for_<tool>"
    loc2 = cache_location("Data", "theclique_for_Data", "transfermarkt_search")
    assert loc2.relpath().as_posix() == "Data/theclique_for_Data/transfermarkt_search.json"
    loc3 = cache_location("Data", "theclique", "transfermarkt_search_for_theclique")
    assert loc3.relpath() == loc2.relpath()
    assert cache_key({"name": "Lionel Messi", "n": 1, "ok": True}) == "{'name': 'Lionel Messi', 'n': 1, 'ok': True}"


def test_hit_miss_and_no_simulator(running, tmp_path):
    cache = tmp_path / "cache"
    stored = {"error": "", "response": {"player": "Lionel Messi"}}
    _upstream_cache(cache, "Data", "theclique_for_Data", "transfermarkt_search", {"{'name': 'Lionel Messi'}": stored})
    server = running()
    with VirtualAPIClient(server.url) as client:
        assert client.call("Data", "theclique", "transfermarkt_search", '{\n  "name": "Lionel Messi"\n}') == stored
        assert client.call("Data", "theclique", "transfermarkt_search", {"name": "Lionel Messi"}) == stored
        miss = client.call("Data", "theclique", "transfermarkt_search", {"name": "Someone Else"})
        assert miss["error"].startswith(NO_SIMULATOR_ERROR) and miss["response"] == ""
        parse_error = client.call("Data", "theclique", "transfermarkt_search", "{not json")
        assert parse_error == {"error": "Tool input parse error...\n", "response": ""}
    assert server.api.stats["hits"] == 2 and server.api.stats["misses"] == 1


def test_miss_is_simulated_and_saved_for_upstream(running, tmp_path):
    seen = []

    def simulator(request):
        seen.append(request)
        return json.dumps({"error": "", "response": f"echo {request['tool_input']['q']}"})

    server = running(simulator=simulator)
    with VirtualAPIClient(server.url) as client:
        first = client.call("Video_Images", "Simple YouTube Search", "Search", {"q": "landscapes"})
        again = client.call("Video_Images", "Simple YouTube Search", "Search", '{"q": "landscapes"}')
    assert first == again == {"error": "", "response": "echo landscapes"}
    assert len(seen) == 1 and seen[0]["function"] == "search_for_simple_youtube_search"
    saved = json.loads((tmp_path / "cache/Video_Images/simple_youtube_search_for_Video_Images/search.json").read_text())
    assert saved == {"{'q': 'landscapes'}": first}  # exactly what upstream's server would look up


def test_simulator_failure_and_unsaved_misses(running, tmp_path):
    def broken(request):
        raise RuntimeError("model offline")

    server = running(simulator=broken)
    with VirtualAPIClient(server.url) as client:
        answer = client.call("Data", "t", "a", {})
    assert "model offline" in answer["error"]
    assert not (tmp_path / "cache/Data").exists()


def test_fwm_simulator_renders_transition_text(running):
    calls = []

    def predict(states, actions):
        calls.append((states, actions))
        return ['{"error": "", "response": "predicted"}' for _ in states]

    server = running(simulator=fwm_simulator(predict), save_misses=False)
    with VirtualAPIClient(server.url) as client:
        assert client.call("Data", "theclique", "Transfermarkt search", {"name": "x"})["response"] == "predicted"
        assert client.call("Data", "theclique", "Transfermarkt search", {"name": "x"})["response"] == "predicted"
    (states, actions), _ = calls
    assert actions == ['{"name": "transfermarkt_search_for_theclique", "arguments": {"name": "x"}}']
    assert states[0].startswith("Query: \nFunctions:\ntransfermarkt_search_for_theclique(name?: string)")


@pytest.mark.parametrize("field,value", [
    ("category", "../../etc"), ("tool_name", "a/b"), ("api_name", "..\\x"), ("category", "/abs"),
    ("tool_name", "x\x00y"), ("api_name", ""), ("category", 5),
])
def test_bad_names_are_rejected(app_client, tmp_path, field, value):
    body = {"category": "Data", "tool_name": "t", "api_name": "a", "tool_input": "{}", field: value}
    response = app_client.post("/virtual", json=body)
    assert response.status_code == 400 and field in response.json()["error"]
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def test_malformed_requests_get_4xx_json(app_client):
    post = app_client.post
    call = {"category": "D", "tool_name": "t", "api_name": "a"}
    cases = [
        (post("/virtual", content=b"{not json", headers={"Content-Type": "application/json"}), 400, "not valid JSON"),
        (post("/virtual", content=b"\xff{}"), 400, "not valid JSON"),
        (post("/virtual", json=[1, 2]), 400, "JSON object"),
        (post("/virtual", json=call), 400, "missing field 'tool_input'"),
        (post("/virtual", json={**call, "tool_input": 3}), 400, "tool_input"),
        (post("/virtual", json={**call, "tool_input": "", "x": 1}), 400, "unknown fields ['x']"),
        (post("/virtual", json={**call, "tool_input": "", "strip": 5}), 400, "field 'strip'"),
        (post("/virtual", json={**call, "category": "c" * 300, "tool_input": ""}), 400, "at most 256"),
        (post("/virtual", json={**call, "category": "  ", "tool_input": ""}), 400, "non-empty"),
        (post("/virtual", content=b"x" * 5000), 413, "exceeds"),
        (post("/other", json={}), 404, "POST /virtual"),
        (app_client.get("/virtual"), 405, "POST /virtual"),
    ]
    for response, status, text in cases:
        assert response.status_code == status and text in response.json()["error"], response.text
        assert set(response.json()) == {"error", "response"}
    assert app_client.get("/virtual").headers["allow"] == "POST"
    health = app_client.get("/health").json()
    assert health["status"] == "ok" and health["errors"] == 7  # the ones that reached field validation
    # any Content-Type: the body is JSON whatever the client labels it, as upstream's clients expect
    answer = post("/virtual", content=json.dumps({**call, "tool_input": ""}), headers={"Content-Type": "text/plain"})
    assert answer.json() == {"error": "", "response": "x"}


def test_openapi_docs_describe_the_request_model(app_client):
    assert "swagger" in app_client.get("/docs").text.lower()
    spec = app_client.get("/openapi.json").json()
    schema = spec["paths"]["/virtual"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["required"]) == {"category", "tool_name", "api_name", "tool_input"}
    assert schema["properties"]["category"]["maxLength"] == 256 and schema["additionalProperties"] is False
    assert {"400", "413", "503"} <= set(spec["paths"]["/virtual"]["post"]["responses"])


def test_oversized_bodies_are_refused_whether_announced_or_chunked(running):
    server = running(max_body_bytes=1000)
    url = server.url + "/virtual"
    announced = httpx.post(url, content=b"x" * 5000)
    assert announced.status_code == 413 and "5000 bytes exceeds the limit of 1000" in announced.json()["error"]

    def chunks():  # no Content-Length: the size is counted as the body arrives
        for _ in range(50):
            yield b"x" * 100

    streamed = httpx.post(url, content=chunks())
    assert streamed.status_code == 413 and "exceeds the limit of 1000" in streamed.json()["error"]
    small = json.dumps({"category": "D", "tool_name": "t", "api_name": "a", "tool_input": ""}).encode()
    assert httpx.post(url, content=iter([small[:10], small[10:]])).status_code == 200  # chunked and small: fine


def test_a_stalled_body_is_cut_off(running):
    server = running(body_timeout_s=0.5)
    host, port = server.server_address
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"POST /virtual HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        reply = b"".join(iter(lambda: sock.recv(4096), b"")).decode()  # until the server closes
    assert reply.startswith("HTTP/1.1 408") and "not received within 0.5 s" in reply


def test_missing_content_length_is_refused(running):
    server = running()
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"POST /virtual HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = sock.recv(4096).decode()
    assert reply.startswith("HTTP/1.1 411")


def test_client_raises_on_protocol_errors(running):
    server = running()
    with VirtualAPIClient(server.url) as client, pytest.raises(SwirlError, match="400.*category"):
        client.call("../x", "t", "a", {})
    with VirtualAPIClient("http://127.0.0.1:9") as client, pytest.raises(SwirlError, match="virtual API server"):
        client.call("Data", "t", "a", {})


def test_binds_loopback_by_default_and_warns_otherwise(running, tmp_path, capsys):
    assert running().server_address[0] == "127.0.0.1"
    assert capsys.readouterr().err == ""
    exposed = make_server(tmp_path / "other", host="0.0.0.0")  # bound, never served
    exposed.server_close()
    assert "warning: binding 0.0.0.0, not loopback" in capsys.readouterr().err


def test_a_busy_port_is_one_error_before_the_cache_folder_exists(running, tmp_path):
    port = running().server_address[1]
    with pytest.raises(SwirlError, match=f"cannot listen on 127.0.0.1:{port}"):
        make_server(tmp_path / "second", port=port)
    assert not (tmp_path / "second").exists()



def test_a_busy_port_fails_before_the_model_loads(running, tmp_path):
    port, loads = running().server_address[1], []
    with pytest.raises(SwirlError, match=f"cannot listen on 127.0.0.1:{port}"):
        make_server(tmp_path / "second", port=port, load_simulator=lambda: loads.append(1))
    assert loads == []
    server = make_server(tmp_path / "third", load_simulator=lambda: loads.append(1) or (lambda call: "simulated"))
    server.server_close()
    assert loads == [1]

def test_swirl_eval_serve_runs_uvicorn_on_loopback(tmp_path):
    """The command as a user runs it: its own process, the port it prints, docs, a clean Ctrl-C."""
    _upstream_cache(tmp_path / "cache", "Data", "t_for_Data", "a", {"{}": {"error": "", "response": "stored"}})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "evals.cli", "serve", "--bench", "stabletoolbench", "--port", "0",
                             "--cache-dir", str(tmp_path / "cache")], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "serve printed nothing within 60 s"
        line = proc.stdout.readline()
        url = line.split(" on ", 1)[1].split("/virtual", 1)[0]
        assert url.startswith("http://127.0.0.1:") and "/docs" in line
        with VirtualAPIClient(url) as client:
            assert client.call("Data", "t", "a", "") == {"error": "", "response": "stored"}
        assert httpx.get(url + "/docs").status_code == 200
        assert httpx.get(url + "/health").json()["hits"] == 1
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr.read() == ""  # loopback: no warning, and nothing else said


def test_concurrent_misses_on_one_file_lose_nothing(running, tmp_path):
    server = running(simulator=lambda r: {"error": "", "response": r["tool_input"]["i"] * 2})
    n = 300
    with VirtualAPIClient(server.url) as client, ThreadPoolExecutor(max_workers=24) as pool:
        answers = list(pool.map(lambda i: client.call("Data", "shared tool", "one api", {"i": i}), range(n)))
    assert [a["response"] for a in answers] == [2 * i for i in range(n)]
    path = tmp_path / "cache/Data/shared_tool_for_Data/one_api.json"
    saved = json.loads(path.read_text())
    assert saved == {f"{{'i': {i}}}": {"error": "", "response": 2 * i} for i in range(n)}
    assert [p.name for p in path.parent.iterdir()] == ["one_api.json"]  # no temp files left behind


def test_corrupt_cache_file_is_never_overwritten(running, tmp_path):
    path = tmp_path / "cache/Data/t_for_Data/a.json"
    path.parent.mkdir(parents=True)
    path.write_text("{broken")
    server = running(simulator=lambda r: {"error": "", "response": "sim"})
    with VirtualAPIClient(server.url) as client:
        assert client.call("Data", "t", "a", {})["response"] == "sim"
    assert path.read_text() == "{broken"


def test_load_benchmark_runs_and_verifies(monkeypatch, tmp_path, capsys):
    """benchmarks/server_load.py end to end at a tiny size: every answer checked, nothing lost in the cache."""
    import importlib
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "benchmarks"))
    server_load = importlib.import_module("server_load")
    out = tmp_path / "load.json"
    assert server_load.main(["--clients", "4", "--requests", "60", "--seconds", "20", "--files", "3",
                             "--model-requests", "5", "--max-simulations", "1", "--max-waiting", "1",
                             "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["hits"]["requests"] == results["misses"]["requests"] == 60
    assert results["verify"] == {"cache_files": 3, "entries": 120, "lost": 0, "corrupted": 0, "problems": []}
    # five calls at once against one slot and a queue of one: some are turned away, all end answered and saved
    assert results["model"]["requests"] == 5 and results["model"]["errors"] == 0
    assert results["model_verify"]["entries"] == 5 and results["model_verify"]["lost"] == 0
    assert results["model_load"]["refused_503"] >= 1 and results["model_load"]["peak_running"] == 1
    assert "vs direct" in capsys.readouterr().out


def test_unstorable_answers_and_broken_layout_do_not_poison_the_cache(running, tmp_path):
    answers = iter([object(), {"error": "", "response": "fine"}, {"error": "", "response": "also fine"}])
    server = running(simulator=lambda r: next(answers))
    (tmp_path / "cache/Data").mkdir(parents=True)
    (tmp_path / "cache/Data/blocked_for_Data").write_text("a file where a folder should be")
    with VirtualAPIClient(server.url) as client:
        assert "Failed to generate fake response" in client.call("Data", "t", "a", {"x": 1})["error"]
        assert client.call("Data", "t", "a", {"x": 2})["response"] == "fine"
        assert client.call("Data", "blocked", "a", {})["response"] == "also fine"  # answered, not saved
    saved = json.loads((tmp_path / "cache/Data/t_for_Data/a.json").read_text())
    assert saved == {"{'x': 2}": {"error": "", "response": "fine"}}


def test_deep_nesting_is_refused_with_400(running):
    server = running()
    url = server.url + "/virtual"
    deep = "[" * 10_000 + "]" * 10_000
    response = httpx.post(url, content=('{"category": "D", "tool_name": "t", "api_name": "a", "tool_input": ' + deep
                                        + "}").encode(), headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "nested deeper" in response.json()["error"]
    nested_text = json.dumps({"category": "D", "tool_name": "t", "api_name": "a", "tool_input": deep})
    response = httpx.post(url, content=nested_text.encode(), headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "tool_input is nested deeper" in response.json()["error"]
    shallow_but_over = '{"category": "D", "tool_name": "t", "api_name": "a", "tool_input": {"x": ' + "[" * 70
    response = httpx.post(url, content=(shallow_but_over + "]" * 70 + "}}").encode())
    assert response.status_code == 400 and "nested deeper than 64" in response.json()["error"]
    fine = {"category": "D", "tool_name": "t", "api_name": "a", "tool_input": json.dumps({"a": [[{"b": 1}]]})}
    assert httpx.post(url, json=fine).status_code == 200


def test_simulations_are_bounded_and_the_rest_told_to_retry(running):
    gate, started = threading.Event(), []

    def slow(request):
        started.append(request["cache_key"])
        gate.wait(10)
        return {"error": "", "response": "ok"}

    server = running(simulator=slow, max_simulations=2, max_waiting=2, save_misses=False)
    url = server.url + "/virtual"
    bodies = [{"category": "D", "tool_name": "t", "api_name": "a", "tool_input": json.dumps({"i": i})}
              for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(httpx.post, url, json=b, timeout=20) for b in bodies]
        for _ in range(200):  # until the 4 admitted requests are in and the other 4 were turned away
            if httpx.get(server.url + "/health").json()["busy"] == 4:
                break
            threading.Event().wait(0.02)
        assert len(started) == 2  # never more than max_simulations running at once
        gate.set()
        responses = [f.result() for f in futures]
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 4 + [503] * 4
    assert all(r.headers["Retry-After"] == "2" for r in responses if r.status_code == 503)
    assert all("busy" in r.json()["error"] for r in responses if r.status_code == 503)
    assert len(started) == 4
    health = httpx.get(server.url + "/health").json()
    assert health["peak_running"] == 2 and health["running"] == health["admitted"] == 0


def test_hits_are_answered_while_the_simulator_queue_is_full(running, tmp_path):
    """Waiting misses hold worker threads; a hit must still find one at once."""
    _upstream_cache(tmp_path / "cache", "D", "hit_for_D", "a", {"{}": {"error": "", "response": "cached"}})
    gate = threading.Event()
    server = running(simulator=lambda r: gate.wait(10) and {"error": "", "response": "ok"},
                     max_simulations=1, max_waiting=60, save_misses=False)
    url = server.url + "/virtual"
    with ThreadPoolExecutor(61) as pool:
        futures = [pool.submit(httpx.post, url, json={"category": "D", "tool_name": "t", "api_name": "a",
                                                      "tool_input": json.dumps({"i": i})}, timeout=30)
                   for i in range(61)]
        for _ in range(300):
            if httpx.get(server.url + "/health").json()["admitted"] == 61:
                break
            time.sleep(0.02)
        start = time.perf_counter()
        hit = httpx.post(url, json={"category": "D", "tool_name": "hit", "api_name": "a", "tool_input": ""})
        assert hit.json() == {"error": "", "response": "cached"} and time.perf_counter() - start < 2
        gate.set()
        assert [f.result().status_code for f in futures] == [200] * 61
