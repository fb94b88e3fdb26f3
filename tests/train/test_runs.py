"""Run checkpoints: a kill at any write step leaves the previous epoch's checkpoint or the new one, whole."""

from __future__ import annotations

import pytest
import torch

from fashionlens.train.runs import RunDir
from fashionlens.utils import FolderError
from tests.faults import Killed, crash_at


def _epochs(n: int) -> list[tuple[dict[str, torch.Tensor], dict, torch.optim.Optimizer]]:
    """(weights, state, optimizer) after each of n training steps of a tiny model."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    out = []
    for epoch in range(n):
        opt.zero_grad()
        model(torch.randn(8, 4)).pow(2).mean().backward()
        opt.step()
        snapshot = torch.optim.AdamW(model.parameters(), lr=0.1)
        snapshot.load_state_dict(opt.state_dict())  # a deep copy: later steps must not move it
        out.append(({k: v.detach().clone() for k, v in model.state_dict().items()}, {"epoch": epoch}, snapshot))
    return out


def _same_epoch(run: RunDir, epochs) -> int:
    weights, state, opt = run.load_checkpoint("last")
    e = state["epoch"]
    want_w, _, want_opt = epochs[e]
    for k, v in want_w.items():
        torch.testing.assert_close(weights[k], v)
    for pid, st in want_opt.state_dict()["state"].items():
        torch.testing.assert_close(opt["state"][pid]["exp_avg"], st["exp_avg"])
        assert float(opt["state"][pid]["step"]) == float(st["step"])
    return e


def test_a_kill_at_every_checkpoint_write_step_keeps_one_whole_epoch(tmp_path):
    epochs = _epochs(2)
    (w0, s0, o0), (w1, s1, o1) = epochs
    count = RunDir(tmp_path / "count")
    count.save_checkpoint("last", w0, s0, o0)
    with crash_at(None) as c:
        count.save_checkpoint("last", w1, s1, o1)
    assert c.steps >= 3  # weights, optimizer, state (+ manifest, the swap)
    seen = []
    for k in range(c.steps):
        run = RunDir(tmp_path / f"run-{k}")
        run.save_checkpoint("last", w0, s0, o0)
        with crash_at(k), pytest.raises(Killed):
            run.save_checkpoint("last", w1, s1, o1)
        assert run.has_checkpoint("last")
        seen.append(_same_epoch(run, epochs))
    switch = seen.index(1)
    assert seen == [0] * switch + [1] * (len(seen) - switch)


def test_a_damaged_checkpoint_is_refused_naming_the_file(tmp_path):
    (w, s, o), = _epochs(1)
    run = RunDir(tmp_path)
    run.save_checkpoint("last", w, s, o)
    f = tmp_path / "checkpoints" / "last" / "optimizer.safetensors"
    f.write_bytes(f.read_bytes()[:-8])
    with pytest.raises(FolderError, match=r"last/optimizer\.safetensors: \d+ bytes, the manifest says"):
        run.load_checkpoint("last")
