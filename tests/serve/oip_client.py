"""Talks to `dagrun serve` with NVIDIA's tritonclient, a third-party Open Inference Protocol
(KServe V2) client: liveness, readiness, model metadata, then inference on the rows of a CSV twice,
with binary tensor data (tritonclient's default) and with JSON tensors. Prints one JSON object:
the metadata and, per mode, every output tensor (name -> datatype, shape, flat data).

    python oip_client.py HOST:PORT MODEL DATA.csv [FEATURE,FEATURE,...]

The model's inputs come from its metadata: one [N, F] matrix (of FEATURE columns, in that order)
or one tensor per feature, each the CSV column of the input's name.
"""

import csv
import json
import sys

import numpy as np
import tritonclient.http as httpclient

DTYPES = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64}


def read_columns(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {name: [r[name] for r in rows] for name in rows[0]}


def build_inputs(metadata, columns, features, binary):
    inputs = []
    specs = metadata["inputs"]
    for spec in specs:
        dtype = DTYPES[spec["datatype"]]
        if len(specs) == 1 and len(spec["shape"]) == 2:
            array = np.array([[float(v) for v in columns[f]] for f in features], dtype=dtype).T.copy()
        else:
            array = np.array([float(v) for v in columns[spec["name"]]], dtype=dtype)
            if len(spec["shape"]) == 2:
                array = array.reshape(-1, 1)
        tensor = httpclient.InferInput(spec["name"], list(array.shape), spec["datatype"])
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    return inputs


def outputs_of(result, metadata):
    response = result.get_response()
    out = {}
    for spec in metadata["outputs"]:
        tensor = result.get_output(spec["name"])
        assert tensor is not None, f"no output {spec['name']} in {response}"
        assert tensor["datatype"] == spec["datatype"], (tensor, spec)
        array = result.as_numpy(spec["name"])
        data = array.reshape(-1).tolist()
        if tensor["datatype"] == "BYTES":
            data = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in data]
        out[spec["name"]] = {"datatype": tensor["datatype"], "shape": list(array.shape), "data": data}
    return response["model_version"], out


def main():
    url, model, data = sys.argv[1:4]
    features = sys.argv[4].split(",") if len(sys.argv) > 4 and sys.argv[4] else []
    client = httpclient.InferenceServerClient(url=url)
    assert client.is_server_live(), "server not live"
    assert client.is_server_ready(), "server not ready"
    server = client.get_server_metadata()
    assert server["name"] == "dagrun" and "binary_tensor_data" in server["extensions"], server
    assert client.is_model_ready(model), f"model {model} not ready"
    metadata = client.get_model_metadata(model)
    version = metadata["versions"][0]
    assert client.is_model_ready(model, model_version=version.lstrip("v0") or "0")
    columns = read_columns(data)

    # Binary tensor data both ways: tritonclient's default (binary_data_output when no outputs named).
    binary = client.infer(model, build_inputs(metadata, columns, features, True), request_id="binary")
    # JSON tensors both ways, each output asked for by name, through the versioned path.
    wanted = [httpclient.InferRequestedOutput(o["name"], binary_data=False) for o in metadata["outputs"]]
    as_json = client.infer(
        model,
        build_inputs(metadata, columns, features, False),
        outputs=wanted,
        model_version=version,
        request_id="json",
    )
    assert binary.get_response()["id"] == "binary"
    assert as_json.get_response()["id"] == "json"
    for o in as_json.get_response()["outputs"]:
        assert "data" in o and "parameters" not in o, o
    result = {"metadata": metadata, "binary": {}, "json": {}}
    for mode, r in (("binary", binary), ("json", as_json)):
        result[mode]["version"], result[mode]["outputs"] = outputs_of(r, metadata)
    client.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
