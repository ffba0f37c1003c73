#!/usr/bin/env python3
"""The agent's Books gateway (`agent --serve`) on loopback, against the simulator. Stdlib only.

    python3 bench/gateway.py ZOHO_DEVICE_BINARY ZOHO_DEVICE_SIM_BINARY [--scale 20]

(bench/run.sh builds both into target/bench, with the `rusage` launcher beside them.)

Figures (docs/benchmarks.md):

* a dashboard refreshing every 5 s, 3 endpoints per load, for an hour: Books calls through the
  gateway with the default TTL (60 s), against 2,160 without it. Run time-compressed by
  `--scale` (5 s / scale between loads, TTL 60 s / scale, an hour / scale), the daily budget out
  of the way (its stretching runs on the real clock; its effect is computed beside);
* the peak of Books calls in any (scaled) minute;
* 50 concurrent clients on one path for 5 TTLs: Books calls per TTL;
* the time of one request through the gateway, cache hit and miss, beside the same request
  straight to the simulator with the token (each on a fresh connection, as curl does);
* the agent's RSS (VmRSS, /proc) serving, beside an agent without --serve.
"""

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import measure  # noqa: E402  (Sim, Side, the event reader)

PATHS = ["/books/v3/invoices?per_page=50", "/books/v3/contacts", "/books/v3/items"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def get(port, path, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path, headers={"Host": f"127.0.0.1:{port}", **(headers or {})})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, dict(r.getheaders()), body


def books_calls(sim):
    sim.flush()
    return [r for r in sim.requests() if r[2].startswith("/books/")]


def rss_kb(pid):
    return measure.proc_status(pid, "VmRSS")


def main():
    binary, sim_binary = sys.argv[1], sys.argv[2]
    # The launcher that records a child's rusage (login_run uses it); built by bench/run.sh.
    measure.RUSAGE = os.path.join(os.path.dirname(os.path.abspath(binary)), "rusage")
    scale = float(sys.argv[sys.argv.index("--scale") + 1]) if "--scale" in sys.argv else 20.0
    work = tempfile.mkdtemp(prefix="zd-gw-bench-")
    # The simulator's own Books budgets out of the way: the gateway's limiter is what is measured
    # (and the direct calls of the overhead figures would otherwise count against it).
    sim = measure.Sim(sim_binary, interval_ms=200,
                      extra=["--books-rate-limit", "1000000", "--books-daily-limit", "100000000"])
    argv = {"login": "login --events json --display none"}
    side = measure.Side("ours", lambda cmd: [binary, *argv.get(cmd, cmd).split()], sim, work)
    side.env["ZOHO_SCOPE"] = "ZohoBooks.fullaccess.all"
    res = {}
    measure.login_run(side, 1, res)

    port = free_port()
    ttl = 60 / scale
    agent = side.spawn(
        f"agent --display none --serve 127.0.0.1:{port} --cache-ttl {max(1, round(ttl))} --daily-budget 100000000",
        stdout=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    start_calls = len(books_calls(sim))

    # 1. An hour of a dashboard, compressed.
    loads = 720
    every = 5 / scale
    t0 = time.perf_counter()
    served = {"hit": 0, "miss": 0, "coalesced": 0, "stale": 0}
    for i in range(loads):
        for p in PATHS:
            status, h, _ = get(port, p)
            assert status == 200, status
            served[h.get("x-zoho-device-cache", "?")] = served.get(h.get("x-zoho-device-cache", "?"), 0) + 1
        time.sleep(max(0, t0 + (i + 1) * every - time.perf_counter()))
    calls = books_calls(sim)[start_calls:]
    times = sorted(t for t, *_ in calls)
    window = 60_000 / scale
    peak = max(sum(1 for u in times if t <= u < t + window) for t in times) if times else 0
    res["hour"] = dict(loads=loads, requests=loads * len(PATHS), books_calls=len(calls), peak_per_minute=peak,
                       served=served, ttl_s=max(1, round(ttl)) * scale)
    rss_serving = rss_kb(agent.pid)

    # 2. 50 concurrent clients on one path for 5 TTLs.
    before = len(books_calls(sim))
    stop = time.perf_counter() + 5 * max(1, round(ttl)) + 0.2
    errors = []

    def client():
        while time.perf_counter() < stop:
            s, _, _ = get(port, "/books/v3/invoices?status=overdue")
            if s != 200:
                errors.append(s)

    th = [threading.Thread(target=client) for _ in range(50)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    res["concurrent"] = dict(clients=50, ttls=5, books_calls=len(books_calls(sim)) - before, errors=len(errors))

    # 3. Overhead: hit and miss through the gateway, beside direct calls with the token.
    token = subprocess.run([binary, "token"], env=side.env, capture_output=True, text=True).stdout.strip()
    api = sim.url.rsplit(":", 1)[1]
    org = json.loads(get(int(api), "/books/v3/organizations", {"Authorization": f"Zoho-oauthtoken {token}"})[2])[
        "organizations"][0]["organization_id"]
    # Few misses: the last minute of the dashboard and the 50 clients used part of the
    # gateway's per-minute budget already.
    n = 20
    get(port, "/books/v3/items?per_page=5")
    hit, miss, direct = [], [], []
    for i in range(n):
        t = time.perf_counter()
        get(port, "/books/v3/items?per_page=5")
        hit.append(time.perf_counter() - t)
        t = time.perf_counter()
        get(int(api), f"/books/v3/items?per_page=5&organization_id={org}", {"Authorization": f"Zoho-oauthtoken {token}"})
        direct.append(time.perf_counter() - t)
        t = time.perf_counter()
        s, h, _ = get(port, f"/books/v3/items?per_page=5&page={i + 2}")
        miss.append(time.perf_counter() - t)
        assert h.get("x-zoho-device-cache") == "miss", h
    med = lambda xs: statistics.median(xs) * 1000  # noqa: E731
    res["latency_ms"] = dict(direct=med(direct), hit=med(hit), miss=med(miss), runs=n)

    # 4. RSS beside an agent without --serve (same token file, idle).
    plain = side.spawn("agent --display none", stdout=subprocess.DEVNULL)
    time.sleep(2)
    res["rss_kb"] = dict(serving_after_hour=rss_serving, serving_now=rss_kb(agent.pid), without_serve=rss_kb(plain.pid))
    status = json.loads(get(port, "/_zoho-device/status")[2])
    res["status"] = {k: status[k] for k in ("upstream_calls", "cache")}
    for p in (agent, plain):
        p.terminate()
        p.wait(10)
    sim.stop()
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
