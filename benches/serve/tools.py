"""Helpers of benches/serve/run.sh (standard library only).

    tools.py bodies REFERENCE_CSV OUTDIR ROWS   single.json (1 row) and batch.json (ROWS rows) from a CSV
    tools.py wait URL SECONDS                   until GET URL answers 200
    tools.py check DAGRUN_URL FASTAPI_URL DIR   both services give the same predictions for the same rows
    tools.py busy SECONDS                       cores the machine keeps busy meanwhile
    tools.py procs PID                          {"pids", "rss_kib", "pss_kib", "cpu_ticks"} of PID and its descendants
    tools.py record NAME LABEL ROWS CONNS LOAD PROCS_BEFORE PROCS_AFTER WRK_OUTPUT [DIR]   one run as a JSON line
                                                (DIR: times0/1 of the shell around wrk, stat0/1 from /proc/stat)
    tools.py summary RESULTS_JSONL              the last run, one line
    tools.py format RESULTS_JSONL               the tables (Markdown)
"""

import csv
import json
import os
import sys
import time
import urllib.error
import urllib.request

FEATURES = [
    "age", "income", "tenure_months", "region", "num_purchases",
    "avg_basket", "days_since_last", "support_calls", "discount_rate", "session_minutes",
]


def bodies(reference, outdir, n):
    """Rows of the model's own reference data, as JSON objects, numbers written as in the CSV."""
    n = int(n)
    rows = []
    with open(reference, newline="") as f:
        for rec in csv.DictReader(f):
            for k in FEATURES:
                float(rec[k])  # a number, written as the CSV has it (a JSON number too)
            rows.append("{" + ",".join(f'"{k}":{rec[k]}' for k in FEATURES) + "}")
            if len(rows) == n:
                break
    if len(rows) < n:
        sys.exit(f"{reference} has {len(rows)} rows, {n} wanted")
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "single.json"), "w") as f:
        f.write("[" + rows[0] + "]")
    with open(os.path.join(outdir, "batch.json"), "w") as f:
        f.write("[" + ",".join(rows) + "]")
    with open(os.path.join(outdir, "rows.json"), "w") as f:
        f.write("[" + ",".join(rows) + "]")


def wait(url, seconds):
    deadline = time.monotonic() + float(seconds)
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            sys.exit(f"{url} did not answer 200 within {seconds} s")
        time.sleep(0.1)


def post(url, body):
    req = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        if r.status != 200:
            sys.exit(f"{url}: HTTP {r.status}")
        return json.load(r)


def check(dagrun_url, fastapi_url, bodydir):
    """Labels equal, probabilities within 1e-6, for single rows and a whole batch."""
    with open(os.path.join(bodydir, "rows.json")) as f:
        rows = json.load(f)
    requests = [[r] for r in rows[:20]] + [rows]
    compared = mismatches = 0
    for req in requests:
        body = json.dumps(req)
        a, b = post(dagrun_url, body), post(fastapi_url, body)
        if len(a["predictions"]) != len(req) or len(b["predictions"]) != len(req):
            sys.exit(f"wrong number of predictions: dagrun {len(a['predictions'])}, FastAPI {len(b['predictions'])}, sent {len(req)}")
        for i in range(len(req)):
            la, lb = a["predictions"][i], b["predictions"][i]
            pa, pb = a["probabilities"][i], b["probabilities"][i]
            compared += 1
            if la != lb or len(pa) != len(pb) or any(abs(x - y) > 1e-6 for x, y in zip(pa, pb)):
                mismatches += 1
                if mismatches <= 5:
                    print(f"  mismatch: row {i}: dagrun {la} {pa}, FastAPI {lb} {pb}", file=sys.stderr)
    if mismatches:
        sys.exit(f"predictions differ on {mismatches} of {compared} rows")
    labels = [r for r in post(dagrun_url, json.dumps(rows))["predictions"]]
    print(f"same predictions from both services on {compared} rows "
          f"(20 single-row requests and one of {len(rows)} rows; {sum(1 for l in labels if l == 1)} predicted 1)")


def descendants(pid):
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [int(pid)]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def procs(pid):
    pids = descendants(pid)
    rss = pss = ticks = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
            with open(f"/proc/{p}/stat") as f:
                stat = f.read()
            fields = stat[stat.rindex(")") + 2:].split()
            ticks += int(fields[11]) + int(fields[12])  # utime + stime
        except OSError:
            continue
    print(json.dumps({"pids": pids, "rss_kib": rss, "pss_kib": pss, "cpu_ticks": ticks}))


def children_cpu(path):
    """Seconds of user + system CPU of a shell's children, from bash's `times` (its second line)."""
    total = 0.0
    for t in open(path).read().splitlines()[1].split():
        m, sec = t.rstrip("s").split("m")
        total += int(m) * 60 + float(sec)
    return total


def busy_ticks(path):
    """Busy CPU ticks of the whole machine, from the `cpu` line of /proc/stat."""
    f = [int(x) for x in open(path).read().split()[1:]]
    return f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] if len(f) > 7 else 0)  # user nice system irq softirq steal


def busy(seconds):
    """Cores the machine keeps busy over SECONDS (before the load: other work)."""
    def ticks():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)
    t0 = ticks()
    time.sleep(float(seconds))
    print(f"{(ticks() - t0) / os.sysconf('SC_CLK_TCK') / float(seconds):.2f}")


def record(name, label, rows, conns, load, before, after, out, workdir=None, delay_ms="0"):
    """One run as a JSON line: wrk's RESULT, CPU during it (the server's, wrk's, the machine's, in
    ticks), the server's memory after it."""
    wrk = json.loads(next(l for l in out.splitlines() if l.startswith("RESULT "))[len("RESULT "):])
    before, after = json.loads(before), json.loads(after)
    r = {"service": name, "label": label, "rows": int(rows), "connections": int(conns), "load_before": load,
         "wrk": wrk, "cpu_ticks": after["cpu_ticks"] - before["cpu_ticks"], "mem": after}
    if int(delay_ms):
        r["delay_ms"] = int(delay_ms)
    if workdir:
        hz = os.sysconf("SC_CLK_TCK")
        r["wrk_cpu_ticks"] = round((children_cpu(f"{workdir}/times1") - children_cpu(f"{workdir}/times0")) * hz)
        r["machine_busy_ticks"] = busy_ticks(f"{workdir}/stat1") - busy_ticks(f"{workdir}/stat0")
    print(json.dumps(r))


def summary(results_path):
    """The last run, one line."""
    with open(results_path) as f:
        r = json.loads(f.read().splitlines()[-1])
    w, l = r["wrk"], r["wrk"]["latency_us"]
    s = w["duration_us"] / 1e6
    paced = f", paced {r['delay_ms']} ms" if r.get("delay_ms") else ""
    print(f"  {r['rows']:>5} row(s) x {r['connections']:>2} conns{paced}: {w['requests'] / s:10,.0f} req/s "
          f"{w['requests'] * r['rows'] / s:12,.0f} rows/s  p50 {l['p50'] / 1000:7.2f} ms  p99 {l['p99'] / 1000:7.2f} ms  "
          f"errors {sum(w['errors'].values())}  server CPU {r['cpu_ticks'] / os.sysconf('SC_CLK_TCK') / s:.2f} cores  "
          f"RSS {r['mem']['rss_kib'] / 1024:.0f} MiB  {others(r)}(load before: {r['load_before']})", flush=True)


def others(r):
    """CPU that neither the server nor wrk used during the run (other work on the machine), as text."""
    if "machine_busy_ticks" not in r:
        return ""
    s = r["wrk"]["duration_us"] / 1e6 * os.sysconf("SC_CLK_TCK")
    wrk = r["wrk_cpu_ticks"] / s
    rest = max(0.0, (r["machine_busy_ticks"] - r["cpu_ticks"] - r["wrk_cpu_ticks"]) / s)
    return f"wrk CPU {wrk:.2f}  others {rest:.2f} cores  "


def what(rows, delay_ms=0):
    text = "1 row" if rows == 1 else f"{rows:,} rows"
    return text + (f", paced ({delay_ms} ms pause per request)" if delay_ms else "")


def fmt_int(x):
    return f"{x:,.0f}"


def fmt_ms(us):
    return f"{us / 1000:.2f}" if us < 10_000 else f"{us / 1000:.1f}"


def fmt(results_path):
    runs = [json.loads(line) for line in open(results_path) if line.strip()]
    hz = os.sysconf("SC_CLK_TCK")
    services, seen = [], set()
    for r in runs:
        if r["service"] not in seen:
            seen.add(r["service"])
            services.append((r["service"], r["label"]))

    def stats(r):
        w = r["wrk"]
        secs = w["duration_us"] / 1e6
        reqs = w["requests"] / secs
        errors = sum(w["errors"].values())
        cpu = r["cpu_ticks"] / hz / secs  # cores busy in the server
        if "machine_busy_ticks" in r:
            wrk_cpu = r["wrk_cpu_ticks"] / hz / secs
            other = max(0.0, (r["machine_busy_ticks"] - r["cpu_ticks"] - r["wrk_cpu_ticks"]) / hz / secs)
            wrk_cpu, other = f"{wrk_cpu:.2f}", f"{other:.2f}"
        else:
            wrk_cpu = other = "?"
        return {
            "wrk_cpu": wrk_cpu, "other_cpu": other,
            "rps": reqs, "rows": reqs * r["rows"], "p50": w["latency_us"]["p50"], "p99": w["latency_us"]["p99"],
            "errors": errors, "cpu": cpu, "cpu_us": (r["cpu_ticks"] / hz) / max(w["requests"], 1) * 1e6,
        }

    print("### Every run\n")
    print("| service | request | conns | req/s | rows/s | p50 ms | p99 ms | errors | server CPU (cores) | CPU µs/req "
          "| wrk CPU (cores) | other CPU (cores) | load avg before |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        s = stats(r)
        print(f"| {r['label']} | {what(r['rows'], r.get('delay_ms', 0))} | {r['connections']} | {fmt_int(s['rps'])} | {fmt_int(s['rows'])} | "
              f"{fmt_ms(s['p50'])} | {fmt_ms(s['p99'])} | {s['errors']} | {s['cpu']:.2f} | {fmt_int(s['cpu_us'])} | "
              f"{s['wrk_cpu']} | {s['other_cpu']} | {r['load_before']} |")

    print("\n### Resident memory after the load (all of the service's processes)\n")
    print("| service | processes | RSS MiB | PSS MiB |")
    print("|---|---:|---:|---:|")
    for name, label in services:
        last = [r for r in runs if r["service"] == name][-1]["mem"]
        print(f"| {label} | {len(last['pids'])} | {last['rss_kib'] / 1024:.1f} | {last['pss_kib'] / 1024:.1f} |")

    names = [n for n, _ in services]
    labels = dict(services)
    subject = os.environ.get("BENCH_SUBJECT", "dagrun")
    key = lambda r: (r["rows"], r["connections"], r.get("delay_ms", 0))
    by = {n: {key(r): stats(r) for r in runs if r["service"] == n} for n in names}
    mem = {n: [r for r in runs if r["service"] == n][-1]["mem"]["rss_kib"] for n in names}
    for base in os.environ.get("BENCH_BASE", "fastapi fastapi-1t").split():
        if base not in names or subject not in names:
            continue
        print(f"\n### {labels[subject]} vs {labels[base]}\n")
        print("| request | conns | throughput (dagrun ÷ FastAPI) | p50 (FastAPI ÷ dagrun) | p99 (FastAPI ÷ dagrun) "
              "| CPU per request (FastAPI ÷ dagrun) |")
        print("|---|---:|---:|---:|---:|---:|")
        for k, s in by[subject].items():
            b = by[base].get(k)
            if not b:
                continue
            tput = "(same load)" if k[2] else f"**{s['rps'] / b['rps']:.1f}×**"
            print(f"| {what(k[0], k[2])} | {k[1]} | {tput} | {b['p50'] / s['p50']:.1f}× | "
                  f"{b['p99'] / s['p99']:.1f}× | {b['cpu_us'] / s['cpu_us']:.1f}× |")
        print(f"\nResident memory: {mem[subject] / 1024:.0f} MiB vs {mem[base] / 1024:.0f} MiB "
              f"({mem[base] / mem[subject]:.1f}× less).")
        print("\nTargets:")
        singles = sorted(c for (rows, c, d) in by[subject] if rows == 1 and not d and (1, c, 0) in by[base])
        for c in singles:
            ratio = by[subject][(1, c, 0)]["rps"] / by[base][(1, c, 0)]["rps"]
            print(f"* single-row throughput at {c} connection(s): {ratio:.1f}× (target ≥ 5×): "
                  f"{'met' if ratio >= 5 else 'MISSED'}")
    if subject in by:
        print()
        for (rows, c, d), st in by[subject].items():
            if rows == 1 and c == 16:
                p99 = st["p99"] / 1000
                how = f"paced, {fmt_int(st['rps'])} req/s" if d else f"saturated, {fmt_int(st['rps'])} req/s"
                print(f"* {labels[subject]}: p99 at 16 connections ({how}) {p99:.2f} ms (target ≤ 2 ms): "
                      f"{'met' if p99 <= 2 else 'MISSED'}")

if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"bodies": bodies, "wait": wait, "check": check, "procs": procs, "busy": busy, "record": record, "summary": summary,
     "format": fmt}[cmd](*args)
