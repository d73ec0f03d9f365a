"""The process-start floor: the workload's shell commands spawned directly (posix_spawn of
`sh -c CMD`), JOBS at a time, each as soon as the commands it reads from have finished.

    python3 -S floor.py spec.json [JOBS]

No cache, no bookkeeping: what any engine running these commands must at least spend.
"""
import collections
import json
import os
import sys


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    jobs = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    tasks = {t["id"]: t for t in spec["tasks"]}
    waiting = {tid: set(t["deps"]) for tid, t in tasks.items()}
    dependents = collections.defaultdict(list)
    for tid, t in tasks.items():
        for d in t["deps"]:
            dependents[d].append(tid)
    ready = collections.deque(tid for tid in tasks if not waiting[tid])
    running = {}
    done = 0
    env = dict(os.environ)
    while ready or running:
        while ready and len(running) < jobs:
            tid = ready.popleft()
            pid = os.posix_spawn("/bin/sh", ["sh", "-c", tasks[tid]["cmd"]], env)
            running[pid] = tid
        pid, status = os.wait()
        tid = running.pop(pid)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            sys.exit(f"floor: task {tid} failed with exit code {code}")
        done += 1
        for d in dependents[tid]:
            waiting[d].discard(tid)
            if not waiting[d]:
                ready.append(d)
    if done != len(tasks):
        sys.exit(f"floor: ran {done} of {len(tasks)} tasks (a cycle?)")


if __name__ == "__main__":
    main()
