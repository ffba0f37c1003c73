#!/usr/bin/env python3
"""The agent's Books gateway (`agent --serve`) on loopback, against the simulator. Stdlib only.

    python3 bench/gateway.py ZOHO_DEVICE_BINARY ZOHO_DEVICE_SIM_BINARY [--scale 20] [--short] [--json OUT]

(bench/run.sh builds both into target/bench, with the `rusage` launcher beside them, and runs
this after bench/measure.py; `--short` runs 10 minutes of the dashboard instead of an hour and
takes fewer samples.)
Every figure is printed beside its baseline of the same run: no gateway (each page load calls
Books), the same request straight to the simulator, an agent without --serve.

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


STARTED = []  # processes to stop, also when a step fails


def main():
    try:
        run()
    finally:
        for p in STARTED:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()


def run():
    binary, sim_binary = sys.argv[1], sys.argv[2]
    # The launcher that records a child's rusage (login_run uses it); built by bench/run.sh.
    measure.RUSAGE = os.path.join(os.path.dirname(os.path.abspath(binary)), "rusage")
    short = "--short" in sys.argv
    # Compressing further would put the real per-minute limiter (100 calls a minute, not scaled)
    # in the way; --short runs 10 minutes of the dashboard instead of an hour.
    scale = float(sys.argv[sys.argv.index("--scale") + 1]) if "--scale" in sys.argv else 20.0
    work = tempfile.mkdtemp(prefix="zd-gw-bench-")
    # The simulator's own Books budgets out of the way: the gateway's limiter is what is measured
    # (and the direct calls of the overhead figures would otherwise count against it).
    sim = measure.Sim(sim_binary, interval_ms=200,
                      extra=["--books-rate-limit", "1000000", "--books-daily-limit", "100000000"])
    STARTED.append(sim.proc)
    argv = {"login": "login --events json --display none"}
    side = measure.Side("ours", lambda cmd: [binary, *argv.get(cmd, cmd).split()], sim, work)
    side.env["ZOHO_SCOPE"] = "ZohoBooks.fullaccess.all"
    res = {"scale": scale}
    measure.login_run(side, 1, res)

    port = free_port()
    ttl = 60 / scale
    agent = side.spawn(
        f"agent --display none --serve 127.0.0.1:{port} --cache-ttl {max(1, round(ttl))} --daily-budget 100000000",
        stdout=subprocess.DEVNULL,
    )
    STARTED.append(agent)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    start_calls = len(books_calls(sim))

    # 1. An hour of a dashboard, compressed.
    loads = 120 if short else 720
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
    n = 10 if short else 20
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
    STARTED.append(plain)
    time.sleep(2)
    res["rss_kb"] = dict(serving_after_hour=rss_serving, serving_now=rss_kb(agent.pid), without_serve=rss_kb(plain.pid))
    status = json.loads(get(port, "/_zoho-device/status")[2])
    res["status"] = {k: status[k] for k in ("upstream_calls", "cache")}
    for p in (agent, plain):
        p.terminate()
        p.wait(10)
    sim.stop()
    report(res)
    if "--json" in sys.argv:
        with open(sys.argv[sys.argv.index("--json") + 1], "w") as f:
            json.dump(res, f, indent=1)


def report(res):
    """The figures beside their baselines of the same run."""
    h, c, lat, rss = res["hour"], res["concurrent"], res["latency_ms"], res["rss_kb"]
    rows = [
        (f"Books calls, {h['loads'] * 5 // 60} min of a dashboard (5 s, 3 paths)", f"{h['books_calls']}",
         f"{h['requests']} (no gateway: every load calls Books)"),
        ("  peak Books calls in any minute", f"{h['peak_per_minute']}", "100 (Books' per-minute limit)"),
        ("  answers hit / miss / coalesced / stale",
         " / ".join(str(h["served"].get(k, 0)) for k in ("hit", "miss", "coalesced", "stale")), ""),
        (f"Books calls, 50 clients on one path for {c['ttls']} TTLs", f"{c['books_calls']} ({c['errors']} errors)",
         f"{c['ttls']} (one per TTL)"),
        (f"request, cache hit (median of {lat['runs']}, fresh connection)", f"{lat['hit']:.2f} ms",
         f"{lat['direct']:.2f} ms straight to the simulator with the token"),
        ("request, cache miss", f"{lat['miss']:.2f} ms", f"{lat['direct']:.2f} ms straight"),
        ("agent RSS, serving (after the dashboard run / at the end)",
         f"{rss['serving_after_hour']} / {rss['serving_now']} KiB",
         f"{rss['without_serve']} KiB without --serve"),
    ]
    print(f"\n== the Books gateway (agent --serve), time compressed {res['scale']:g}x; loopback only")
    w = max(len(r[0]) for r in rows)
    print(f"{'':{w}}  {'gateway':>20}  baseline (same run)")
    for name, ours, base in rows:
        print(f"{name:{w}}  {ours:>20}  {base}")


if __name__ == "__main__":
    main()
