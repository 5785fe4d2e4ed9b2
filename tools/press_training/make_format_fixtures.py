"""Files in the formats trained press parts come in, made by Python's own writers, for the tests of Attend's readers.

- stdlib-pickle.pt: a torch.save-shaped file made without torch (src/io/torch-file.ts reads it);
- c-f8.npy, fortran-f4.npy, big-f8.npy, v2-f8.npy: numpy.save / numpy.lib.format files of float64 in C order, float32
  in Fortran order, big-endian float64 and a version 2.0 header (src/io/npy.ts reads them);
- expected.json: the values the tests must find, in C order.

    python3 tools/press_training/make_format_fixtures.py test/fixtures/press-trained/formats

About the .pt file:

torch.save writes a zip whose data.pkl is a standard pickle (protocol 2) in which tensors reduce to
torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, backward_hooks) and storages are
persistent ids ('storage', torch.FloatStorage, key, 'cpu', numel) whose bytes are the entries data/<key>. This script
pickles the same stream with Python's own pickler (stand-in torch modules registered under torch's names so the
pickler writes torch's globals), in the shape of Fast KVzip's optim.py output: {"module": [state_dict per layer],
"loss": numpy array, ...}, the state dicts being OrderedDicts with a `_metadata` attribute as nn.Module.state_dict()
returns them, one tensor a non-contiguous view (a transpose) sharing its storage with another. numpy arrays pickle
through numpy's own reducers (and bytes through _codecs.encode at protocol 2), which the reader must pass over.

"""
import collections
import io
import json
import os
import pickle
import sys
import types
import zipfile

import numpy as np


def stand_ins():
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks):
        raise RuntimeError("only pickled here")

    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    torch.FloatStorage = FloatStorage
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    sys.modules["torch"] = torch
    sys.modules["torch._utils"] = utils
    return FloatStorage, _rebuild_tensor_v2


FloatStorage, rebuild = stand_ins()


class Storage:
    def __init__(self, key, values):
        self.key, self.values = key, np.asarray(values, dtype="<f4")


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self):
        return (rebuild, (self.storage, self.offset, tuple(self.size), tuple(self.stride), False, collections.OrderedDict()))


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", FloatStorage, obj.key, "cpu", obj.values.size)
        return None


def main(folder):
    os.makedirs(folder, exist_ok=True)
    out = os.path.join(folder, "stdlib-pickle.pt")
    storages = []

    def tensor(values, shape):
        s = Storage(str(len(storages)), np.asarray(values, dtype=np.float32).reshape(-1))
        storages.append(s)
        stride = [int(np.prod(shape[i + 1:])) for i in range(len(shape))]
        return Tensor(s, 0, shape, stride)

    rng = np.random.default_rng(0)
    module = []
    for layer in range(2):
        sd = collections.OrderedDict()
        w = rng.standard_normal(6).astype(np.float32)
        sd["w"] = tensor(w, [2, 3])
        # The transpose of w: the same storage, strides (1, 3).
        sd["w_t"] = Tensor(sd["w"].storage, 0, [3, 2], [1, 3])
        sd["b"] = tensor(np.arange(4, dtype=np.float32) + layer, [4])
        sd["offset_view"] = Tensor(sd["b"].storage, 1, [2], [2])
        sd._metadata = collections.OrderedDict([("", {"version": 1}), ("q_norm", {"version": 1})])
        module.append(sd)
    payload = {"module": module, "loss": np.array([[0.5, 0.25]]), "name": "stdlib", "steps": 5000, "lr": 0.2}
    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(payload)
    archive = "stdlib-pickle"
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr(f"{archive}/data.pkl", buf.getvalue())
        z.writestr(f"{archive}/byteorder", "little")
        for s in storages:
            z.writestr(f"{archive}/data/{s.key}", s.values.tobytes())
        z.writestr(f"{archive}/version", "3\n")
    expected = {"pickle": {"w": module[0]["w"].storage.values.tolist(), "b1": module[1]["b"].storage.values.tolist()}}

    a = np.arange(24, dtype=np.float64).reshape(2, 3, 4) / 7
    np.save(os.path.join(folder, "c-f8.npy"), a)
    np.save(os.path.join(folder, "fortran-f4.npy"), np.asfortranarray(a.astype(np.float32)))
    np.save(os.path.join(folder, "big-f8.npy"), a.astype(">f8"))
    with open(os.path.join(folder, "v2-f8.npy"), "wb") as f:
        np.lib.format.write_array(f, a, version=(2, 0))
    expected["npy"] = {"shape": list(a.shape), "f8": a.reshape(-1).tolist(), "f4": a.astype(np.float32).astype(np.float64).reshape(-1).tolist()}
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump(expected, f)
    print("wrote", folder)


if __name__ == "__main__":
    main(sys.argv[1])
