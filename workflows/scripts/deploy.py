"""Promotes the evaluated model: copies it with its metrics into the deployed/ directory."""
import json, os, shutil

shutil.copyfile(os.environ["DAGRUN_IN_MODEL"], os.environ["DAGRUN_OUT_MODEL"])
metrics = json.load(open(os.environ["DAGRUN_IN_METRICS"]))
with open(os.environ["DAGRUN_OUT_CARD"], "w") as f:
    f.write(f"model deployed with accuracy {metrics['accuracy']} on {metrics['rows']} test rows\n")
