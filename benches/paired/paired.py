#!/usr/bin/env python3
"""Paired timing of several dagrun binaries (e.g. before and after a change), alternating them
in the same minutes so that a host whose speed drifts affects all alike.

  paired.py first  ROUNDS BIN...   first runs of W1, W2, W3 (benches/peers) beside the floor
  paired.py rerun  TASKS ROUNDS BIN...   cached re-runs of a TASKS-task workflow shaped like
                                         benches/engine.rs's (a binary tree of `cat` tasks)

Prints medians (and, for re-runs, min, max and the median peak RSS of the whole process, as
`wait4` reports it: the history written after the run ended included; Linux counts the spawning
Python's RSS at `exec` into it too, ~15 MiB, a floor below what is measured here). Copy the
binaries being compared at the same moment (fresh copies map more file pages on their first
runs) and compare only numbers from the same invocation. Work is done under $PAIRED_DIR
(default: a new directory under /tmp), never deleted by this script: on ext4 without a journal,
creating files soon after mass deletions is measurably slower. Delete it when done (a
10,000-task re-run set is ~180 MB per binary).
"""
import json, os, shutil, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "peers"))


def base_dir():
    d = os.environ.get("PAIRED_DIR") or tempfile.mkdtemp(prefix="dagrun-paired-")
    os.makedirs(d, exist_ok=True)
    return d


def first(rounds, bins):
    import peers
    base = base_dir()
    for wl in ["w1", "w2", "w3"]:
        tmpl = f"{base}/{wl}-template-{time.time_ns()}"
        peers.write_template(tmpl, wl)
        res = {b: [] for b in ["floor"] + bins}
        names = ["floor"] + bins
        for r in range(rounds):
            for b in names[r % len(names):] + names[:r % len(names)]:
                d = f"{base}/{wl}-{len(res[b])}-{names.index(b)}-{time.time_ns()}"
                shutil.copytree(tmpl, d)
                if b == "floor":
                    cmd = [sys.executable, "-S", os.path.join(HERE, "..", "peers", "floor.py"), "spec.json", "2"]
                elif wl == "w3":
                    cmd = [b, "backfill", "workflow.ron", "--from", peers.W3_FROM, "--to", peers.W3_TO, "-j", "2"]
                else:
                    cmd = [b, "run", "workflow.ron", "-j", "2"]
                t0 = time.perf_counter()
                p = subprocess.run(cmd, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                res[b].append(time.perf_counter() - t0)
                assert p.returncode == 0, (b, wl, p.returncode)
        fl = statistics.median(res["floor"])
        cols = " ".join(f"{os.path.basename(b)} {statistics.median(v):.3f}s ({statistics.median(v) / fl:.2f}x)"
                        for b, v in res.items())
        print(wl, cols, flush=True)


def engine_workflow(d, n):
    """The shape of benches/engine.rs: task i reads one of 100 inputs and task (i-1)/2's output."""
    os.makedirs(f"{d}/data", exist_ok=True)
    for k in range(100):
        with open(f"{d}/data/in{k}.txt", "w") as f:
            f.write(f"input {k}\n")
    lines = ['Workflow(\n    name: "bench",\n    tasks: [\n']
    for i in range(n):
        up = "" if i == 0 else f', "up": Output("t{(i - 1) // 2}", "o")'
        lines.append(f'        Task(name: "t{i}", kind: Command(run: "cat $DAGRUN_IN_DATA > $DAGRUN_OUT_O"), '
                     f'inputs: {{"data": File("data/in{i % 100}.txt"){up}}}, outputs: {{"o": "out/t{i}.txt"}}, '
                     f'params: {{"i": {i}}}),\n')
    lines.append("    ],\n)\n")
    with open(f"{d}/wf.ron", "w") as f:
        f.write("".join(lines))


def rerun(tasks, rounds, bins):
    base = base_dir()
    tmpl = f"{base}/engine-{tasks}-{time.time_ns()}"
    engine_workflow(tmpl, tasks)
    dirs = {}

    def run(b):
        """One `dagrun run --json`: its last line, and the whole process's peak RSS in KiB as the
        kernel counts it (`wait4`), which includes the history written after the run's
        `peak_rss_kb` was reported."""
        p = subprocess.Popen([b, "run", "wf.ron", "--json"], cwd=dirs[b], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
        out = p.stdout.read()
        p.stdout.close()
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        assert p.returncode == 0, (b, p.returncode)
        return json.loads(out.decode().strip().splitlines()[-1]), usage.ru_maxrss
    for b in bins:
        dirs[b] = f"{base}/rerun-{tasks}-{bins.index(b)}-{time.time_ns()}"
        shutil.copytree(tmpl, dirs[b])
        run(b)  # the first run
    time.sleep(0.3)
    for b in bins:
        run(b)  # a warm-up re-run (lets the stat cache trust the outputs written just before)
    res = {b: [] for b in bins}
    rss = {b: [] for b in bins}
    for r in range(rounds):
        for b in bins if r % 2 == 0 else bins[::-1]:
            t0 = time.perf_counter()
            last, peak_kb = run(b)
            res[b].append(time.perf_counter() - t0)
            counts = last.get("counts", {})
            assert counts.get("cached") and not counts.get("succeeded"), (b, counts)
            rss[b].append(peak_kb)
    for b in bins:
        v = res[b]
        print(f"{os.path.basename(b):16} median {statistics.median(v) * 1000:7.1f} ms  min {min(v) * 1000:7.1f}"
              f"  max {max(v) * 1000:7.1f}  peak {statistics.median(rss[b]) / 1024:.1f} MiB", flush=True)


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "first":
        first(int(sys.argv[2]), sys.argv[3:])
    elif len(sys.argv) >= 5 and sys.argv[1] == "rerun":
        rerun(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:])
    else:
        sys.exit(__doc__)
