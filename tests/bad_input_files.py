"""The input files of the bad-input matrix (tests/test_bad_input.py): model files, hardware and sweep files, NIR
graphs, IDX and .npz data sets, schedule files, each broken in one way. Kept apart from the matrix so that the
cases read as a table; nothing here is a test."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

NET_PY = '''
import torch
from torch import nn

def wrong_type():
    return 42

def wrong_tuple():
    return nn.Linear(4, 4), "not a tensor"

def raises():
    raise RuntimeError("boom in user code")

def lstm():
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 4), nn.LSTM(4, 4)), torch.zeros(2, 1, 4)

def attention():
    return nn.Sequential(nn.Linear(4, 4), nn.TransformerEncoderLayer(4, 1)), torch.zeros(2, 1, 4)

def flat_input():
    return nn.Linear(4, 4), torch.zeros(4)


class _Loop(nn.Module):  # the time loop inside forward: T = 3 is the model's own
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return torch.stack([self.fc(x) for _ in range(3)])


def loop_fixed_t():
    return _Loop(), torch.zeros(5, 4)


def single_step():  # one call of a single-step network on [B, 1, 4, 4]: its neuron steps once
    import snntorch as snn
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 4), snn.Leaky(beta=0.5, init_hidden=True)), torch.zeros(5, 1, 4, 4)


class _Readout(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x):  # fc2 on two of four steps: neither every step nor once per sample
        return torch.stack([self.fc2(s) for s in torch.stack([self.fc1(x) for _ in range(4)])[::2]])


def readout_outside_loop():
    return _Readout(), torch.zeros(5, 4)


def undecidable():
    return nn.Sequential(nn.Flatten(0, 2), nn.Linear(4, 4)), torch.zeros(2, 3, 2, 4)


def recurrent_neuron():
    import snntorch as snn
    return nn.Sequential(nn.Linear(4, 4), snn.RLeaky(beta=0.5, linear_features=4, init_hidden=True)), torch.zeros(2, 1, 4)


def conv_transpose():
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ConvTranspose2d(2, 2, 3)), torch.zeros(2, 1, 6, 6)


def lin6():
    return nn.Sequential(nn.Linear(6, 3)), torch.zeros(2, 1, 6)


def loop_lin6():  # the time loop inside forward ([B, 6] in): cannot be stepped by a method
    return _Loop6(), torch.zeros(1, 6)


class _Loop6(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return torch.stack([self.fc(x) for _ in range(2)])


class _Pair6(nn.Module):  # multi-step and steppable, but its own forward: no blocks can be cut out of it
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(6, 4), nn.Linear(4, 3)

    def forward(self, x):
        return self.fc2(self.fc1(x))


def pair6():
    return _Pair6(), torch.zeros(2, 1, 6)


class _Resets6(nn.Module):  # loops over x[t] but resets its neurons in every forward: stepping loses the state
    def __init__(self):
        super().__init__()
        import snntorch as snn
        self.fc, self.lif = nn.Linear(6, 3), snn.Leaky(beta=0.9, threshold=0.1, init_hidden=True)

    def forward(self, x):
        self.lif.reset_mem()
        return torch.stack([self.lif(self.fc(x[t])) for t in range(x.shape[0])])


def resets6():
    return _Resets6(), torch.zeros(2, 1, 6)

class OneSampleOnly(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(x.reshape(x.shape[0], 1, 6))  # works on its example (batch 1), not on a real batch

def one_sample_only():
    return OneSampleOnly(), torch.zeros(2, 1, 6)
'''


def idx_file(magic: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    return struct.pack(f">I{len(dims)}I", magic, *dims) + payload


def write_bad_inputs(d: Path) -> Path:
    """Every bad input file the bad-input matrix refers to, written into the existing folder d."""
    (d / "nets.py").write_text(NET_PY)
    (d / "import_fails.py").write_text("import no_such_module_spikepipe_test\n")
    (d / "syntax.py").write_text("def f(:\n    pass\n")
    (d / "afile").write_text("a regular file, used as a parent directory\n")
    (d / "empty_dir").mkdir()
    hw = {
        "hw_malformed.toml": "[[processor]\nrows = 8\n",
        "hw_no_processor.toml": "[interconnect]\nlink_bytes_per_cycle = 1.0\n",
        "hw_zero_rows.toml": "[[processor]]\nrows = 0\ncols = 8\n",
        "hw_negative_cols.toml": "[[processor]]\nrows = 8\ncols = -8\n",
        "hw_missing_cols.toml": "[[processor]]\nrows = 8\n",
        "hw_dataflow.toml": '[[processor]]\nrows = 8\ncols = 8\ndataflow = "xy"\n',
        "hw_unknown_key.toml": "[[processor]]\nrows = 8\ncols = 8\ncolour = 3\n",
        "hw_count_zero.toml": "[[processor]]\nrows = 8\ncols = 8\ncount = 0\n",
        "hw_binary.toml": "\x00\x01\x02garbage",
    }
    for name, text in hw.items():
        (d / name).write_text(text)
    (d / "garbage.nir").write_bytes(b"not an hdf5 file")
    try:
        import nir
        import numpy as np

        nodes = {"input": nir.Input(input_type={"input": np.array([4])}),
                 "fc": nir.Affine(weight=np.zeros((3, 4)), bias=np.zeros(3)), "delay": nir.Delay(delay=np.ones(3)),
                 "output": nir.Output(output_type={"output": np.array([3])})}
        edges = [("input", "fc"), ("fc", "delay"), ("delay", "output")]
        nir.write(str(d / "delay.nir"), nir.NIRGraph(nodes=nodes, edges=edges))
    except ImportError:
        pass
    head = '[sweep]\nname = "bad"\n'
    sweeps = {
        "sw_malformed.toml": "[sweep\nname = 1\n",
        "sw_no_grid.toml": head,
        "sw_no_network.toml": head + "[grid]\nprocessors = [2]\n",
        "sw_unknown_param.toml": head + '[grid]\ncolour = ["red"]\n[fixed]\nnetwork = "snn-mlp"\n',
        "sw_zero_processors.toml": head + '[grid]\nprocessors = [2, 0]\n[fixed]\nnetwork = "snn-mlp"\n',
        "sw_negative_batch.toml": head + '[grid]\nbatch = [-4]\n[fixed]\nnetwork = "snn-mlp"\n',
        "sw_unknown_network.toml": head + '[grid]\nnetwork = ["snn-mlp", "no-such-net"]\n[fixed]\nprocessors = 2\n',
        "sw_unknown_schedule.toml": head + '[grid]\nschedule = ["gpipe", "bogus"]\n[fixed]\nnetwork = "snn-mlp"\n'
                                           'processors = 2\n',
        "sw_bad_dataflow.toml": head + '[grid]\ndataflow = ["xy"]\n[fixed]\nnetwork = "snn-mlp"\n',
        "sw_bad_array.toml": head + '[grid]\narray = ["0x8"]\n[fixed]\nnetwork = "snn-mlp"\n',
        "sw_bad_kind.toml": '[sweep]\nname = "bad"\nkind = "dance"\n[grid]\nnetwork = ["snn-mlp"]\n',
        "sw_bad_name.toml": '[sweep]\nname = "../../etc"\n[grid]\nnetwork = ["snn-mlp"]\n',
        "sw_missing_hw.toml": head + '[grid]\nhardware = ["nowhere.toml"]\n[fixed]\nnetwork = "snn-mlp"\n',
    }
    for name, text in sweeps.items():
        (d / name).write_text(text)
    write_npz_inputs(d)
    files = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    good = {
        files[0]: idx_file(2051, (4, 28, 28), bytes(4 * 784)), files[1]: idx_file(2049, (4,), bytes(4)),
        files[2]: idx_file(2051, (2, 28, 28), bytes(2 * 784)), files[3]: idx_file(2049, (2,), bytes(2)),
    }
    variants = {
        "idx_truncated": {files[0]: idx_file(2051, (60000, 28, 28), bytes(100))},
        "idx_bad_magic": {files[0]: idx_file(1234, (4, 28, 28), bytes(4 * 784))},
        "idx_short_header": {files[1]: b"\x00\x00"},
        "idx_label_count": {files[1]: idx_file(2049, (3,), bytes(3))},
        "idx_missing_file": {files[3]: None},
        "idx_corrupt_gz": {files[0] + ".gz": b"not gzip at all", files[0]: None},
        "idx_truncated_gz": {files[0] + ".gz": gzip.compress(good[files[0]])[:40], files[0]: None},
        "idx_is_dir": {files[0]: "DIR"},
    }
    write_schedule_files(d)
    for vname, changes in variants.items():
        vd = d / vname
        vd.mkdir()
        for fname, data in {**good, **changes}.items():
            if data is None:
                continue
            if data == "DIR":
                (vd / fname).mkdir()
            else:
                (vd / fname).write_bytes(data)
    return d


def write_schedule_files(d: Path) -> None:
    """Schedule files for snn-mlp on 2 processors (the CLI's default hardware), each broken in one way."""
    import json

    from hwmodels.config import load_cluster
    from schedules import generate
    from spikepipe.schedule_file import to_data, to_text
    from spikepipe.sim.evaluate import load_graph

    c = load_cluster(None, processors=2)
    g = load_graph("snn-mlp", c)
    good = to_data(generate("pipedream", g, c), g, c)

    def broken(name: str, change) -> None:
        data = json.loads(json.dumps(good))
        change(data)
        (d / name).write_text(json.dumps(data))

    slot = {x["task"]: i for i, x in enumerate(good["slots"])}
    f1 = slot["F1"]
    broken("sched_overlap.json", lambda x: x["slots"][f1].update(processor=x["slots"][slot["F0"]]["processor"],
                                                                   start_cycles=0))
    def wrap_over_first(x: dict) -> None:  # the last slot of F0's processor runs past the period end, 1 cycle into
        # the period's first slot (a wrap is allowed, docs/design.md section 4.2; the cyclic overlap is not)
        mine = sorted((sl for sl in x["slots"] if sl["processor"] == x["slots"][slot["F0"]]["processor"]),
                      key=lambda sl: sl["start_cycles"])
        mine[-1]["start_cycles"] = x["period_cycles"] - mine[-1]["duration_cycles"] + mine[0]["start_cycles"] + 1

    broken("sched_wrap_overlap.json", wrap_over_first)
    broken("sched_dependency.json", lambda x: x["slots"][slot["B0"]].update(lag=0))  # B0 before B1's gradient
    broken("sched_lag.json", lambda x: x["slots"][slot["W0"]].update(lag=-1))
    broken("sched_processor.json", lambda x: x["slots"][f1].update(processor=7))
    broken("sched_task.json", lambda x: x["slots"][f1].update(task="F99"))
    broken("sched_duration.json", lambda x: x["slots"][f1].update(duration_cycles=1))
    broken("sched_network.json", lambda x: x.update(network="vgg11"))
    broken("sched_missing_start.json", lambda x: x["slots"][f1].pop("start_cycles"))
    broken("sched_no_slots.json", lambda x: x.update(slots=[]))
    (d / "sched_not_json.json").write_text('{"slots": [')
    text = to_text(generate("pipedream", g, c), g)
    (d / "sched_bad_token.txt").write_text(text.replace("F1@p", "F1@q", 1))


def write_npz_inputs(d: Path) -> None:
    """Data sets for `train --dataset FILE.npz` on nets.py:lin6 (samples of shape (6,), 3 classes)."""
    import numpy as np

    rng = np.random.default_rng(0)

    def split(n: int, shape: tuple = (6,), hi: int = 3) -> tuple:
        return rng.random((n, *shape), dtype=np.float32), rng.integers(0, hi, n)

    (xtr, ytr), (xte, yte) = split(20), split(10)
    np.savez(d / "good.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    np.savez(d / "wrong_shape.npz", x_train=split(20, (7,))[0], y_train=ytr, x_test=split(10, (7,))[0], y_test=yte)
    np.savez(d / "labels_oob.npz", x_train=xtr, y_train=np.where(ytr == 0, 5, ytr), x_test=xte, y_test=yte)
    np.savez(d / "missing.npz", x_train=xtr, y_train=ytr, x_test=xte)
    np.savez(d / "length_mismatch.npz", x_train=xtr, y_train=ytr[:15], x_test=xte, y_test=yte)
    np.savez(d / "float_labels.npz", x_train=xtr, y_train=ytr.astype(np.float32), x_test=xte, y_test=yte)
    (d / "not_npz.npz").write_text("not a zip archive\n")
