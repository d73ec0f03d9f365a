"""Side by side: dagrun, Snakemake and Luigi on the same workloads, with the process-start floor.

Called by benches/peers/run.sh (which makes the venv and builds dagrun); see there and
docs/benchmarks.md. Every tool runs the same trivial shell commands, two at a time:

  task T reading files A, B writes   { cat A B; echo T; } > OUT

W1: 10 independent chains of 20 tasks (each reads its predecessor's output): first run, cached re-run.
W2: a 50-task fan-out/fan-in (root -> 8 -> 40 -> sink): first run, cached re-run.
W3: a 365-day daily backfill (one task per day reading that day's input file): first run, re-run
    with nothing changed, re-run after 3 days' input files changed.

Before timing, one untimed round (BENCH_WARMUP) checks that every tool writes the same files with
the same content. Every run of every round is checked too: every output has the content the
commands must give (computed here from the inputs), and the set of outputs (re)written by the run
(by inode and mtime) is exactly what it should be: all of them for a first run, none for a re-run
with nothing changed, exactly the 3 changed days' for W3's last step. A mismatch stops the
benchmark with an error.
"""
import argparse
import datetime
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = ["floor", "dagrun", "snakemake", "luigi"]
CHANGED_DAYS = ["2025-02-14", "2025-06-30", "2025-11-05"]
W3_FROM, W3_TO = "2025-01-01", "2025-12-31"


# --- workloads ------------------------------------------------------------------------------
# A workload: input files, a spec (the tasks, for the floor, Luigi and the checks), a dagrun
# workflow and a Snakefile, written into a template directory that each run copies.

def task(name, inputs, output):
    """inputs: [(path, producing task or None)], in the order the command reads them."""
    paths = [p for p, _ in inputs]
    return {
        "id": name,
        "name": name,
        "inputs": paths,
        "deps": [d for _, d in inputs if d is not None],
        "input_tasks": [d for _, d in inputs],
        "output": output,
        "cmd": "{ cat %s; echo %s; } > %s" % (" ".join(paths), name, output),
    }


def dagrun_workflow(name, tasks):
    return f'Workflow(\n    name: "{name}",\n    tasks: [\n' + "".join(map(dagrun_task, tasks)) + "    ],\n)\n"


def dagrun_task(t):
    names = [f"i{k}" for k in range(len(t["inputs"]))]
    ins = []
    for n, path, dep in zip(names, t["inputs"], t["input_tasks"]):
        src = f'Output("{dep}", "out")' if dep else f'File("{path}")'
        ins.append(f'"{n}": {src}')
    reads = " ".join(f'"$DAGRUN_IN_{n.upper()}"' for n in names)
    run = '{ cat %s; echo %s; } > "$DAGRUN_OUT_OUT"' % (reads, t["name"])
    return (
        f'        Task(name: "{t["id"]}", kind: Command(run: r#"{run}"#),\n'
        f'            inputs: {{{", ".join(ins)}}}, outputs: {{"out": "{t["output"]}"}}),\n'
    )


def gen_w1():
    files = {f"in/c{c}.txt": f"input of chain {c}\n" for c in range(10)}
    tasks = []
    for c in range(10):
        for s in range(20):
            src = (f"in/c{c}.txt", None) if s == 0 else (f"out/c{c}/t{s - 1}.txt", f"c{c}-t{s - 1}")
            tasks.append(task(f"c{c}-t{s}", [src], f"out/c{c}/t{s}.txt"))
    ron = dagrun_workflow("peers-w1", tasks)
    snakefile = '''\
wildcard_constraints:
    c="[0-9]+",
    t="[0-9]+",

rule all:
    input: expand("out/c{c}/t19.txt", c=range(10))

rule first:
    input: "in/c{c}.txt"
    output: "out/c{c}/t0.txt"
    shell: "{{ cat {input}; echo c{wildcards.c}-t0; }} > {output}"

rule step:
    input: lambda w: f"out/c{w.c}/t{int(w.t) - 1}.txt"
    output: "out/c{c}/t{t}.txt"
    wildcard_constraints:
        t="[1-9][0-9]*",
    shell: "{{ cat {input}; echo c{wildcards.c}-t{wildcards.t}; }} > {output}"
'''
    return files, tasks, [f"c{c}-t19" for c in range(10)], ron, snakefile


def gen_w2():
    files = {"in/seed.txt": "seed\n"}
    tasks = [task("root", [("in/seed.txt", None)], "out/root.txt")]
    for m in range(8):
        tasks.append(task(f"m{m}", [("out/root.txt", "root")], f"out/m{m}.txt"))
    for m in range(8):
        for k in range(5):
            tasks.append(task(f"l{m}-{k}", [(f"out/m{m}.txt", f"m{m}")], f"out/l{m}_{k}.txt"))
    leaves = [(f"out/l{m}_{k}.txt", f"l{m}-{k}") for m in range(8) for k in range(5)]
    tasks.append(task("sink", leaves, "out/sink.txt"))
    ron = dagrun_workflow("peers-w2", tasks)
    snakefile = '''\
wildcard_constraints:
    m="[0-9]+",
    k="[0-9]+",

rule sink:
    input: expand("out/l{m}_{k}.txt", m=range(8), k=range(5))
    output: "out/sink.txt"
    shell: "{{ cat {input}; echo sink; }} > {output}"

rule root:
    input: "in/seed.txt"
    output: "out/root.txt"
    shell: "{{ cat {input}; echo root; }} > {output}"

rule mid:
    input: "out/root.txt"
    output: "out/m{m}.txt"
    shell: "{{ cat {input}; echo m{wildcards.m}; }} > {output}"

rule leaf:
    input: "out/m{m}.txt"
    output: "out/l{m}_{k}.txt"
    shell: "{{ cat {input}; echo l{wildcards.m}-{wildcards.k}; }} > {output}"
'''
    assert len(tasks) == 50
    return files, tasks, ["sink"], ron, snakefile


def days():
    d, end = datetime.date.fromisoformat(W3_FROM), datetime.date.fromisoformat(W3_TO)
    while d <= end:
        yield d.isoformat()
        d += datetime.timedelta(days=1)


def gen_w3():
    dates = list(days())
    files = {f"in/{d}.txt": f"data of {d}\n" for d in dates}
    tasks = [task(d, [(f"in/{d}.txt", None)], f"out/{d}.txt") for d in dates]
    ron = f'''\
Workflow(
    name: "peers-w3",
    partitions: {{"daily": Daily(start: "{W3_FROM}", end: "{W3_TO}")}},
    tasks: [
        Task(
            name: "day",
            partitioned: "daily",
            kind: Command(run: r#"{{ cat "$DAGRUN_IN_DAY"; echo "$DAGRUN_PARTITION"; }} > "$DAGRUN_OUT_OUT""#),
            inputs: {{"day": File("in/{{date}}.txt")}},
            outputs: {{"out": "out/{{date}}.txt"}},
        ),
    ],
)
'''
    snakefile = f'''\
import datetime

start, end = datetime.date.fromisoformat("{W3_FROM}"), datetime.date.fromisoformat("{W3_TO}")
DAYS = [(start + datetime.timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]

rule all:
    input: expand("out/{{date}}.txt", date=DAYS)

rule day:
    input: "in/{{date}}.txt"
    output: "out/{{date}}.txt"
    shell: "{{{{ cat {{input}}; echo {{wildcards.date}}; }}}} > {{output}}"
'''
    return files, tasks, dates, ron, snakefile


WORKLOADS = {
    "w1": (gen_w1, "W1: 200 tasks, 10 chains of 20", [("first", "first run"), ("cached", "cached re-run")]),
    "w2": (gen_w2, "W2: 50-task fan-out/fan-in", [("first", "first run"), ("cached", "cached re-run")]),
    "w3": (gen_w3, "W3: 365-day backfill", [("first", "first run"), ("cached", "nothing changed"),
                                           ("changed", "3 days' inputs changed")]),
}


def write_template(root, wl):
    files, tasks, targets, ron, snakefile = WORKLOADS[wl][0]()
    os.makedirs(root)
    for path, content in files.items():
        os.makedirs(os.path.join(root, os.path.dirname(path)), exist_ok=True)
        with open(os.path.join(root, path), "w") as f:
            f.write(content)
    for t in tasks:  # output directories exist beforehand: the floor and Luigi's commands do not make them
        os.makedirs(os.path.join(root, os.path.dirname(t["output"])), exist_ok=True)
    with open(os.path.join(root, "spec.json"), "w") as f:
        json.dump({"tasks": tasks, "targets": targets}, f)
    with open(os.path.join(root, "workflow.ron"), "w") as f:
        f.write(ron)
    with open(os.path.join(root, "Snakefile"), "w") as f:
        f.write(snakefile)
    return tasks


# --- checks ---------------------------------------------------------------------------------

def expected_outputs(d, tasks):
    """What each output must hold: the inputs' contents (inputs read from d, upstream outputs
    as computed here), then the task's name."""
    want = {}
    by_output = {}
    for t in tasks:  # specs are in topological order
        parts = []
        for path, dep in zip(t["inputs"], t["input_tasks"]):
            if dep is None:
                with open(os.path.join(d, path), "rb") as f:
                    parts.append(f.read())
            else:
                parts.append(by_output[path])
        content = b"".join(parts) + t["name"].encode() + b"\n"
        want[t["output"]] = content
        by_output[t["output"]] = content
    return want


def snapshot(d):
    out = {}
    top = os.path.join(d, "out")
    for dirpath, _, names in os.walk(top):
        for n in names:
            p = os.path.join(dirpath, n)
            st = os.stat(p)
            out[os.path.relpath(p, d)] = (st.st_ino, st.st_mtime_ns)
    return out


def check_outputs(d, tasks, tool, label):
    want = expected_outputs(d, tasks)
    have = set(snapshot(d))
    if have != set(want):
        die(f"{tool}, {label}: wrote {len(have)} files under out/, expected {len(want)}: "
            f"missing {sorted(set(want) - have)[:5]}, extra {sorted(have - set(want))[:5]}")
    digest = hashlib.sha256()
    for path in sorted(want):
        with open(os.path.join(d, path), "rb") as f:
            got = f.read()
        if got != want[path]:
            die(f"{tool}, {label}: {path} holds {got[:80]!r}, expected {want[path][:80]!r}")
        digest.update(path.encode() + b"\0" + got + b"\0")
    return digest.hexdigest()


def rewritten(before, after):
    return sorted(p for p, v in after.items() if before.get(p) != v)


# --- running --------------------------------------------------------------------------------

def die(msg):
    print(f"\nerror: {msg}", file=sys.stderr)
    sys.exit(1)


class Runner:
    def __init__(self, args):
        self.args = args
        self.py = os.path.join(args.venv, "bin", "python")
        self.snakemake = os.path.join(args.venv, "bin", "snakemake")
        # every first run starts from an empty state dir beside its workflow: a shared one
        # would turn dagrun's first runs into cache restores
        self.env = {k: v for k, v in os.environ.items() if k != "DAGRUN_STATE_DIR"}

    def command(self, tool, wl, step):
        a = self.args
        if tool == "floor":
            return ["python3", "-S", os.path.join(HERE, "floor.py"), "spec.json", str(a.jobs)]
        if tool == "dagrun":
            if wl == "w3":
                return [a.dagrun, "backfill", "workflow.ron", "--from", W3_FROM, "--to", W3_TO, "-j", str(a.jobs)]
            return [a.dagrun, "run", "workflow.ron", "-j", str(a.jobs)]
        if tool == "snakemake":
            return [self.snakemake, "--cores", str(a.jobs)]
        if tool == "luigi":
            return [self.py, os.path.join(HERE, "luigi_wf.py"), "spec.json"]
        raise ValueError(tool)

    def run(self, tool, wl, step, d, log):
        """Runs one step in d; returns (wall seconds, peak RSS in KiB)."""
        rss_file = os.path.join(self.args.work, "rss")
        cmd = ["/usr/bin/time", "-f", "%M", "-o", rss_file] + self.command(tool, wl, step)
        with open(log, "w") as out:
            # A blocking wait, the timeout a timer that kills: `subprocess.run(timeout=)` polls
            # with sleeps of up to 50 ms, which rounded every time up to its next poll.
            expired = threading.Event()
            t0 = time.perf_counter()
            p = subprocess.Popen(cmd, cwd=d, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)
            timer = threading.Timer(self.args.step_timeout, lambda: (expired.set(), p.kill()))
            timer.start()
            try:
                p.wait()
            finally:
                timer.cancel()
            wall = time.perf_counter() - t0
            if expired.is_set() and p.returncode < 0:
                die(f"{tool} {wl} {step}: still running after {self.args.step_timeout} s "
                    f"(BENCH_STEP_TIMEOUT); log: {log}")
        if p.returncode != 0:
            with open(log, errors="replace") as f:
                lines = f.readlines()
            shell = "".join(ln for ln in lines if ln.startswith(("sh:", "cat:")))[:4000]
            die(f"{tool} {wl} {step} failed (exit {p.returncode}), in {d}; the end of its log ({log}):\n"
                f"{''.join(lines[-30:])}" + (f"\nthe shell's errors in it:\n{shell}" if shell else ""))
        with open(rss_file) as f:
            rss = int(f.read().split()[-1])
        return wall, rss


def change_inputs(d, tag):
    for day in CHANGED_DAYS:
        with open(os.path.join(d, "in", f"{day}.txt"), "w") as f:
            f.write(f"data of {day}, changed ({tag})\n")


def one_round(runner, wl, tasks, template, tools, tag, results, digests):
    """Runs every tool through the workload's steps once; records times when results is a dict.

    Each tool runs in a fresh copy of the template that is kept until the whole benchmark ends:
    on ext4 without a journal, creating a file right after many were deleted costs time in
    proportion to how many (the inode allocator skips inodes freed in the last minutes), so
    deleting one tool's tree just before the next tool's timed run would charge the next tool
    for the previous one's cleanup, more the more files it creates."""
    steps = WORKLOADS[wl][2]
    for tool in tools:
        d = os.path.join(runner.args.work, "runs", f"{wl}-{tool}-{tag.replace(' ', '').replace('/', 'of')}")
        shutil.copytree(template, d, symlinks=True)
        for step, label in steps:
            if tool == "floor" and step != "first":
                continue
            if step == "changed":
                change_inputs(d, tag)
            before = snapshot(d)
            log = os.path.join(runner.args.work, "logs", f"{wl}-{tool}-{step}-{tag.replace(' ', '').replace('/', 'of')}.log")
            wall, rss = runner.run(tool, wl, step, d, log)
            after = snapshot(d)
            what = f"{wl} {label} ({tag})"
            digest = check_outputs(d, tasks, tool, what)
            got = rewritten(before, after)
            if step == "first":
                want = sorted(after)
            elif step == "cached":
                want = []
            else:
                want = sorted(f"out/{day}.txt" for day in CHANGED_DAYS)
            if got != want:
                die(f"{tool}, {what}: the run (re)wrote {len(got)} output(s) {got[:6]}, expected exactly "
                    f"{len(want)} {want[:6]}: it re-ran more or less than it should have")
            digests.setdefault((step, tag), {})[tool] = digest
            if results is not None:
                results.setdefault((wl, step), {}).setdefault(tool, []).append((wall, rss))
            print(f"  {tag:>9}  {tool:<9} {label:<24} {wall:8.3f} s {rss / 1024:7.1f} MiB"
                  f"   ({len(got)} output(s) written)", flush=True)
    for (step, t), by_tool in digests.items():
        if t == tag and len(set(by_tool.values())) > 1:
            die(f"{wl} {step} ({tag}): the tools' outputs differ: {by_tool}")


# --- table ----------------------------------------------------------------------------------

def fmt_s(x):
    return f"{x:.3f}" if x < 10 else f"{x:.2f}"


def table(results, tools, versions, header):
    cols = ["workload", "step"]
    if "floor" in tools:
        cols += ["floor s"]
    if "dagrun" in tools:
        cols += ["dagrun s", "MiB"] + (["dagrun/floor"] if "floor" in tools else [])
    for t in ("snakemake", "luigi"):
        if t in tools:
            cols += [f"{versions[t].split()[0]} s", "MiB"] + (["× dagrun"] if "dagrun" in tools else [])
    lines = header + ["", "| " + " | ".join(cols) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(cols) - 2)) + "|"]
    for wl, (_, title, steps) in WORKLOADS.items():
        for step, label in steps:
            r = results.get((wl, step))
            if not r:
                continue
            med = {t: (statistics.median(w for w, _ in v), statistics.median(m for _, m in v)) for t, v in r.items()}
            row = [title, label]
            if "floor" in tools:
                row.append(fmt_s(med["floor"][0]) if "floor" in med else "–")
            if "dagrun" in tools:
                row += [fmt_s(med["dagrun"][0]), f"{med['dagrun'][1] / 1024:.0f}"]
                if "floor" in tools:
                    row.append(f"{med['dagrun'][0] / med['floor'][0]:.2f}×" if "floor" in med else "–")
            for t in ("snakemake", "luigi"):
                if t in tools:
                    row += [fmt_s(med[t][0]), f"{med[t][1] / 1024:.0f}"]
                    if "dagrun" in tools:
                        row.append(f"{med[t][0] / med['dagrun'][0]:.1f}×")
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dagrun", required=True)
    ap.add_argument("--venv", required=True)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--workloads", default="w1 w2 w3")
    ap.add_argument("--tools", default=" ".join(TOOLS))
    ap.add_argument("--step-timeout", type=float, default=300)
    ap.add_argument("--out", default="")
    ap.add_argument("--commit", default="?")
    ap.add_argument("--work", default="")
    args = ap.parse_args()
    tools = args.tools.split()
    for t in tools:
        if t not in TOOLS:
            die(f"unknown tool {t} (BENCH_TOOLS: {' '.join(TOOLS)})")
    wls = args.workloads.split()
    for w in wls:
        if w not in WORKLOADS:
            die(f"unknown workload {w} (BENCH_WORKLOADS: {' '.join(WORKLOADS)})")
    own_work = not args.work
    if own_work:
        args.work = tempfile.mkdtemp(prefix="dagrun-bench-peers.")
    os.makedirs(os.path.join(args.work, "logs"), exist_ok=True)
    shutil.rmtree(os.path.join(args.work, "runs"), ignore_errors=True)  # a kept --work dir's old rounds
    runner = Runner(args)

    def version(cmd):
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]

    versions = {
        "dagrun": version([args.dagrun, "--version"]),
        "snakemake": "Snakemake " + version([runner.snakemake, "--version"]),
        "luigi": "Luigi " + version([runner.py, "-c", "import importlib.metadata as m; print(m.version('luigi'))"]),
    }
    load0 = open("/proc/loadavg").read().split()[:3]
    print(f"{versions['dagrun']} ({args.commit}), {versions['snakemake']}, {versions['luigi']}; "
          f"{os.cpu_count()} cores, load average {' '.join(load0)}; {args.jobs} jobs at a time; "
          f"{args.warmup} checking round(s), then {args.repeat} timed round(s); work dir {args.work}", flush=True)
    results = {}
    t_start = time.time()
    finished = False
    try:
        for wl in wls:
            template = os.path.join(args.work, "runs", f"{wl}-template")
            tasks = write_template(template, wl)
            print(f"\n== {WORKLOADS[wl][1]} ({len(tasks)} tasks)", flush=True)
            digests = {}
            for i in range(args.warmup):
                one_round(runner, wl, tasks, template, tools, f"check {i + 1}", None, digests)
            for i in range(args.repeat):
                order = tools[i % len(tools):] + tools[:i % len(tools)]  # paired, the order rotating
                one_round(runner, wl, tasks, template, order, f"{i + 1}/{args.repeat}", results, digests)
        finished = True
    finally:
        # every round's tree is deleted only now (see one_round)
        shutil.rmtree(os.path.join(args.work, "runs"), ignore_errors=True)
        if own_work and finished:
            shutil.rmtree(args.work, ignore_errors=True)
        elif own_work:
            print(f"(kept {args.work} for a look: the logs are in {args.work}/logs)", file=sys.stderr)
    load1 = open("/proc/loadavg").read().split()[:3]
    fsync = f" (DAGRUN_FSYNC={os.environ['DAGRUN_FSYNC']})" if "DAGRUN_FSYNC" in os.environ else ""
    header = [
        f"{versions['dagrun']} at {args.commit}{fsync}, {versions['snakemake']}, {versions['luigi']}; "
        f"{os.cpu_count()} cores; load average {' '.join(load0)} at the start, {' '.join(load1)} at the end "
        f"({time.time() - t_start:.0f} s in all).",
        f"Medians of {args.repeat} paired rounds (tools alternating), {args.jobs} jobs at a time; wall seconds and "
        f"peak RSS (`/usr/bin/time -f %M`: the largest single process of the tool's tree). The floor spawns the "
        f"same `sh -c` commands directly (`posix_spawn`); `dagrun/floor` and `× dagrun` are ratios of medians.",
    ]
    md = table(results, tools, versions, header)
    print("\n" + md)
    if args.out:
        with open(args.out, "w") as f:
            f.write(md)
        print(f"(written to {args.out})")


if __name__ == "__main__":
    main()
