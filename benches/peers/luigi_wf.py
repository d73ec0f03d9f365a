"""The workload as Luigi tasks: one `Cmd` task per spec entry, its `requires()` the tasks whose
outputs it reads, its `output()` a LocalTarget, its `run()` the same `sh -c` command.

    python luigi_wf.py spec.json

Stock Luigi treats a task as done when its output exists, so a changed input would never re-run
anything. To give Luigi the same job as the others (re-run exactly what a changed input affects),
`complete()` is make-like: the output exists, is not older than any of the task's inputs, and
every required task is complete (checked recursively, memoized once true). That costs a few
stat calls per task; Luigi never reads input contents.
"""
import json
import os
import subprocess
import sys

import luigi

with open(sys.argv[1]) as f:
    SPEC = json.load(f)
TASKS = {t["id"]: t for t in SPEC["tasks"]}


def mtime_ns(path):
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None


class Cmd(luigi.Task):
    tid = luigi.Parameter()

    def requires(self):
        return [Cmd(tid=d) for d in TASKS[self.tid]["deps"]]

    def output(self):
        return luigi.LocalTarget(TASKS[self.tid]["output"])

    def complete(self):
        if getattr(self, "_complete", False):
            return True
        t = TASKS[self.tid]
        out = mtime_ns(t["output"])
        if out is None:
            return False
        for path in t["inputs"]:
            m = mtime_ns(path)
            if m is None or m > out:
                return False
        if not all(r.complete() for r in self.requires()):
            return False
        self._complete = True
        return True

    def run(self):
        subprocess.run(["sh", "-c", TASKS[self.tid]["cmd"]], check=True)


if __name__ == "__main__":
    ok = luigi.build([Cmd(tid=t) for t in SPEC["targets"]], workers=2, local_scheduler=True)
    sys.exit(0 if ok else 1)
