"""Load test for the StableToolBench virtual API server (uvicorn) on loopback.

Starts the server in a child process (so the clients do not share its interpreter lock), then drives it
with `--clients` threads, each with its own keep-alive httpx client:

1. hits:   `--requests` calls whose answers were written to the cache beforehand (upstream layout);
2. misses: `--requests` calls with new inputs, answered by a cheap deterministic simulator and saved;
   they are spread over `--files` cache files, so many threads write to each file at once.
3. model:  `--model-requests` new calls sent all at once to a second server whose simulator runs a
   freshly initialised tiny world model (no training, no download) on one torch thread, as
   `swirl-eval serve --model` would; the server runs `--max-simulations` at a time, queues
   `--max-waiting`, and answers the rest 503 with Retry-After, after which the client waits and retries.
   Meanwhile the server process's runnable threads, its CPU use and the machine's load are sampled:
   the bound holds when the runnable threads stay near `--max-simulations`, however many calls wait.

Phases 1 and 2 stop after `--seconds`. Every answer is compared with the expected one, and afterwards
every cache file is re-read: seeded entries must be unchanged, every answered miss must be there with its
value, and no temp file may be left. The reference is the same calls answered in this process without
HTTP (`VirtualAPI.answer`), so the ratio shows what HTTP and threading cost; for the model phase the
reference also gives the expected answers.

    python benchmarks/server_load.py --clients 32 --requests 2000 --seconds 20 --model-requests 100
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from swirl_envs.stabletoolbench.server import VirtualAPI, cache_key, cache_location, make_server

# What the tiny model's tokenizer is trained on: the kind of text the simulator sees and writes.
TINY_TEXTS = [f"Query: \nFunctions:\nget_item_for_tool_{i}(kind?: string, i?: string)" for i in range(64)] + [
    json.dumps({"error": "", "response": {"item": i, "kind": "model"}}) for i in range(64)]


def simulate(request: dict) -> dict:
    """Deterministic and cheap: the answer is a digest of the call, so a lost or mixed-up entry shows."""
    return {"error": "", "response": _digest(request["cache_file"], request["cache_key"])}


def model_simulator(seed: int = 0) -> Callable[[dict], dict]:
    """A tiny world model's answer to the call, tagged with the call's digest (an untrained model's text
    alone would often be the same for every call, hiding a mixed-up entry). One torch thread per run, so
    that `max_simulations` runs use that many cores."""
    import torch

    from swirl_core import build_tiny_pair
    from swirl_envs.stabletoolbench.server import fwm_simulator

    torch.set_num_threads(1)
    predict = fwm_simulator(build_tiny_pair(TINY_TEXTS, seed=seed).predict_next_states)

    def simulate_with_model(request: dict) -> dict:
        predicted = predict(request)["response"]
        return {"error": "", "response": f"{_digest(request['cache_file'], request['cache_key'])} {predicted}"}

    return simulate_with_model


def _digest(cache_file: str, key: str) -> str:
    return hashlib.sha256(f"{cache_file}|{key}".encode()).hexdigest()[:24]


def _serve(cache_dir: str, queue: mp.Queue, kind: str = "digest", max_simulations: int = 2,
           max_waiting: int = 16) -> None:
    if kind == "model":
        import torch

        torch.set_num_interop_threads(1)
    simulator = model_simulator() if kind == "model" else simulate
    server = make_server(cache_dir, simulator=simulator, max_simulations=max_simulations, max_waiting=max_waiting)
    queue.put((os.getpid(), server.server_address[1]))
    server.serve_forever()


@dataclass
class Phase:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)  # indices of calls answered correctly
    wall: float = 0.0

    def summary(self) -> dict:
        lat = sorted(self.latencies)
        pick = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000) if lat else (lambda q: float("nan"))
        return {"requests": len(lat), "errors": len(self.errors), "seconds": round(self.wall, 3),
                "rps": round(len(lat) / self.wall, 1) if self.wall else 0.0,
                "p50_ms": round(pick(0.50), 2), "p99_ms": round(pick(0.99), 2),
                "mean_ms": round(statistics.fmean(lat) * 1000, 2) if lat else float("nan")}


def _body(i: int, files: int, kind: str) -> dict:
    return {"category": "Load", "tool_name": f"tool {i % files}", "api_name": "get item",
            "tool_input": json.dumps({"kind": kind, "i": i}), "strip": "", "toolbench_key": ""}


def _expected(body: dict) -> dict:
    loc = cache_location(body["category"], body["tool_name"], body["api_name"])
    return {"error": "", "response": _digest(loc.relpath().as_posix(), cache_key(json.loads(body["tool_input"])))}


def seed_cache(cache_dir: Path, n: int, files: int) -> None:
    entries: dict[Path, dict] = {}
    for i in range(n):
        body = _body(i, files, "hit")
        loc = cache_location(body["category"], body["tool_name"], body["api_name"])
        entries.setdefault(cache_dir / loc.relpath(), {})[cache_key(json.loads(body["tool_input"]))] = _expected(body)
    for path, data in entries.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=4))


def run_phase(name: str, url: str, bodies: list[dict], clients: int, seconds: float) -> Phase:
    phase = Phase(name)
    lock = threading.Lock()
    cursor = iter(range(len(bodies)))
    deadline = time.perf_counter() + seconds

    def worker() -> None:
        with httpx.Client(timeout=30) as client:
            while time.perf_counter() < deadline:
                with lock:
                    i = next(cursor, None)
                if i is None:
                    return
                start = time.perf_counter()
                try:
                    response = client.post(url, json=bodies[i])
                    ok = response.status_code == 200 and response.json() == _expected(bodies[i])
                    problem = None if ok else f"call {i}: {response.status_code} {response.text[:120]}"
                except httpx.HTTPError as exc:
                    problem = f"call {i}: {type(exc).__name__}: {exc}"
                elapsed = time.perf_counter() - start
                with lock:
                    phase.latencies.append(elapsed)
                    (phase.errors.append(problem) if problem else phase.answered.append(i))

    phase.wall = wall_time_of([threading.Thread(target=worker) for _ in range(clients)])
    return phase


def wall_time_of(threads: list[threading.Thread]) -> float:
    """Seconds from starting every thread to the last one's end."""
    begin = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - begin


def reference(cache_dir: Path, bodies: list[dict], count: int, simulator: Callable[[dict], dict] = simulate,
              expected: Callable[[dict], dict] | None = _expected) -> tuple[Phase, list[dict]]:
    """The same calls answered in this process, one thread, no HTTP; also returns the answers (checked
    against `expected` unless it is None)."""
    api = VirtualAPI(cache_dir, simulator=simulator)
    phase, answers = Phase("direct"), []
    begin = time.perf_counter()
    for i, body in enumerate(bodies[:count]):
        start = time.perf_counter()
        status, answer = api.answer(body)
        phase.latencies.append(time.perf_counter() - start)
        answers.append(answer)
        ok = status == 200 and (expected is None or answer == expected(body))
        (phase.answered.append(i) if ok else phase.errors.append(str(i)))
    phase.wall = time.perf_counter() - begin
    return phase, answers


# ---------------------------------------------------------------- the model phase: the concurrency bound


def _runnable_threads(pid: int) -> int:
    """Threads of `pid` that are running or ready to run now (state R): its share of the machine's load."""
    count = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/stat") as handle:
                count += handle.read().rsplit(")", 1)[1].split()[0] == "R"
        except OSError:  # the thread ended between listing and reading
            pass
    return count


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


class LoadMonitor(threading.Thread):
    """Samples the server's runnable threads (every 50 ms) and the machine's 1-minute load (every 1 s)."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.stop = pid, threading.Event()
        self.runnable: list[int] = []
        self.loadavg: list[float] = []

    def run(self) -> None:
        tick = 0
        while not self.stop.wait(0.05):
            self.runnable.append(_runnable_threads(self.pid))
            if tick % 20 == 0:
                self.loadavg.append(os.getloadavg()[0])
            tick += 1


def run_model_phase(url: str, bodies: list[dict], expected: list[dict], pid: int) -> tuple[Phase, dict]:
    """All calls at once, one thread each; a 503 is waited out (Retry-After) and retried."""
    phase, lock, refused = Phase("model"), threading.Lock(), [0]
    monitor = LoadMonitor(pid)
    load_before, cpu_before = os.getloadavg()[0], _cpu_seconds(pid)

    def call(i: int) -> None:
        start = time.perf_counter()
        problem = None
        with httpx.Client(timeout=600) as client:
            while True:
                try:
                    response = client.post(url, json=bodies[i])
                except httpx.HTTPError as exc:
                    problem = f"call {i}: {type(exc).__name__}: {exc}"
                    break
                if response.status_code != 503:
                    if response.status_code != 200 or response.json() != expected[i]:
                        problem = f"call {i}: {response.status_code} {response.text[:120]}"
                    break
                with lock:
                    refused[0] += 1
                time.sleep(float(response.headers.get("Retry-After", "1")))
        with lock:
            phase.latencies.append(time.perf_counter() - start)
            (phase.errors.append(problem) if problem else phase.answered.append(i))

    monitor.start()
    phase.wall = wall_time_of([threading.Thread(target=call, args=(i,)) for i in range(len(bodies))])
    monitor.stop.set()
    monitor.join()
    health = httpx.get(url.rsplit("/", 1)[0] + "/health").json()
    runnable = sorted(monitor.runnable) or [0]
    load = {"refused_503": refused[0], "peak_running": health["peak_running"],
            "server_runnable_mean": round(statistics.fmean(runnable), 2),
            "server_runnable_p95": runnable[min(len(runnable) - 1, int(0.95 * len(runnable)))],
            "server_runnable_max": runnable[-1],
            "server_cores_used": round((_cpu_seconds(pid) - cpu_before) / phase.wall, 2),
            "loadavg_1m_before": round(load_before, 2), "loadavg_1m_max": round(max(monitor.loadavg, default=0), 2),
            "cores": os.cpu_count()}
    return phase, load


def verify(cache_dir: Path, calls: list[tuple[dict, dict]]) -> dict:
    """Re-read every cache file: each (body, answer) of `calls` must be stored with that answer."""
    files: dict[Path, dict] = {}
    problems = []
    for path in cache_dir.rglob("*"):
        if path.is_file() and not path.name.endswith(".json"):
            problems.append(f"stray file {path.name}")
    for path in cache_dir.rglob("*.json"):
        try:
            files[path] = json.loads(path.read_text())
        except ValueError as exc:
            problems.append(f"{path}: corrupt ({exc})")
    lost = corrupted = 0
    for body, answer in calls:
        loc = cache_location(body["category"], body["tool_name"], body["api_name"])
        stored = files.get(cache_dir / loc.relpath(), {}).get(cache_key(json.loads(body["tool_input"])))
        if stored is None:
            lost += 1
        elif stored != answer:
            corrupted += 1
    return {"cache_files": len(files), "entries": sum(len(v) for v in files.values()), "lost": lost,
            "corrupted": corrupted, "problems": problems[:10]}


def _start_server(cache_dir: Path, kind: str, max_simulations: int, max_waiting: int) -> tuple[mp.Process, int, str]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_serve, args=(str(cache_dir), queue, kind, max_simulations, max_waiting), daemon=True)
    child.start()
    pid, port = queue.get(timeout=120)
    return child, pid, f"http://127.0.0.1:{port}/virtual"


def _stop(child: mp.Process) -> None:
    child.terminate()
    child.join(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=2000, help="calls per phase (hits, then misses)")
    parser.add_argument("--seconds", type=float, default=20.0, help="time limit per phase")
    parser.add_argument("--files", type=int, default=16, help="cache files the calls spread over")
    parser.add_argument("--model-requests", type=int, default=100,
                        help="calls sent at once to the tiny-model server (0 skips the phase)")
    parser.add_argument("--max-simulations", type=int, default=2, help="the model server's concurrent runs")
    parser.add_argument("--max-waiting", type=int, default=16, help="the model server's queue; beyond, 503")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if not (1 <= args.clients <= 512 and 1 <= args.requests <= 1_000_000 and 0 < args.seconds <= 600
            and 1 <= args.files <= 10_000 and 0 <= args.model_requests <= 500
            and 1 <= args.max_simulations <= 64 and 0 <= args.max_waiting <= 1000):
        parser.error("--clients 1..512, --requests 1..1e6, --seconds (0, 600], --files 1..10000, "
                     "--model-requests 0..500, --max-simulations 1..64, --max-waiting 0..1000")

    with tempfile.TemporaryDirectory(prefix="swirl-load-") as tmp:
        cache_dir, scratch = Path(tmp, "cache"), Path(tmp, "reference")
        hits = [_body(i, args.files, "hit") for i in range(args.requests)]
        misses = [_body(i, args.files, "miss") for i in range(args.requests)]
        seed_cache(cache_dir, args.requests, args.files)
        seed_cache(scratch, args.requests, args.files)

        child, _, url = _start_server(cache_dir, "digest", 2, 16)
        try:
            hit_phase = run_phase("hits", url, hits, args.clients, args.seconds)
            miss_phase = run_phase("misses", url, misses, args.clients, args.seconds)
        finally:
            _stop(child)
        direct_hits, _ = reference(scratch, hits, len(hit_phase.latencies))
        direct_misses, _ = reference(scratch, misses, len(miss_phase.latencies))
        check = verify(cache_dir, [(b, _expected(b)) for b in hits + [misses[i] for i in miss_phase.answered]])

        model = None
        if args.model_requests:
            bodies = [_body(i, args.files, "model") for i in range(args.model_requests)]
            # The reference runs first: it gives the expected answers, and it keeps the clock of the
            # served phase free of this process's model.
            direct_model, expected = reference(Path(tmp, "model-reference"), bodies, len(bodies),
                                               model_simulator(), None)
            child, pid, url = _start_server(Path(tmp, "model-cache"), "model", args.max_simulations,
                                            args.max_waiting)
            try:
                model_phase, load = run_model_phase(url, bodies, expected, pid)
            finally:
                _stop(child)
            model = {"phase": model_phase, "direct": direct_model, "load": load,
                     "verify": verify(Path(tmp, "model-cache"), list(zip(bodies, expected, strict=True)))}

    results = {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "hits": hit_phase.summary(), "misses": miss_phase.summary(),
               "direct_hits": direct_hits.summary(), "direct_misses": direct_misses.summary(),
               "verify": check}
    pairs = [("hits", "direct_hits"), ("misses", "direct_misses")]
    if model:
        results.update(model=model["phase"].summary(), direct_model=model["direct"].summary(),
                       model_load=model["load"], model_verify=model["verify"])
        pairs.append(("model", "direct_model"))
    for name, direct in pairs:
        ref = results[direct]["rps"]
        results[name]["ratio_to_direct"] = round(results[name]["rps"] / ref, 4) if ref else None
    print(f"{'phase':<14}{'requests':>9}{'errors':>7}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'vs direct':>11}")
    for name in [n for pair in zip(*pairs, strict=True) for n in pair]:
        r = results[name]
        ratio = f"{r['ratio_to_direct']:.3f}" if r.get("ratio_to_direct") is not None else "-"
        print(f"{name:<14}{r['requests']:>9}{r['errors']:>7}{r['rps']:>10.1f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
              f"{ratio:>11}")
    checks = [("cache check", check)] + ([("model cache", results["model_verify"])] if model else [])
    for label, c in checks:
        print(f"{label}: {c['cache_files']} files, {c['entries']} entries, lost {c['lost']}, "
              f"corrupted {c['corrupted']}" + (f", problems: {c['problems']}" if c["problems"] else ""))
    if model:
        m = results["model_load"]
        print(f"model load: {args.model_requests} calls at once, limit {args.max_simulations} running + "
              f"{args.max_waiting} waiting; 503s {m['refused_503']} (each waited out and retried); "
              f"peak running {m['peak_running']}; server runnable threads mean {m['server_runnable_mean']}, "
              f"p95 {m['server_runnable_p95']}, max {m['server_runnable_max']}; server CPU "
              f"{m['server_cores_used']} cores of {m['cores']}; machine 1-min load {m['loadavg_1m_before']} "
              f"before, max {m['loadavg_1m_max']} during")
    errors = hit_phase.errors + miss_phase.errors + (model["phase"].errors if model else [])
    for error in errors[:5]:
        print("error:", error)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    bad = any(c["lost"] or c["corrupted"] or c["problems"] for _, c in checks) or errors
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
