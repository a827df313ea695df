"""nlgm.distributed: processes started by torchrun (two CPU processes talking through gloo)."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from nlgm import distributed

ROOT = Path(__file__).resolve().parents[2]  # this worktree: the processes import its nlgm


def torchrun(tmp_path, script, n=2, args=(), timeout=120):
    """Run ``script`` (Python source) in n processes under torchrun; the completed process."""
    (tmp_path / "script.py").write_text(textwrap.dedent(script))
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    for name in distributed.TORCHRUN_VARIABLES:
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={n}",
         "--standalone", str(tmp_path / "script.py"), *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)


def test_one_process_without_torchrun(monkeypatch):
    for name in distributed.TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert distributed.processes() == distributed.Processes(0, 1, 0)
    assert distributed.processes().is_main and not distributed.processes().distributed
    assert distributed.init_process_group("cpu") == (distributed.Processes(), torch.device("cpu"))
    assert distributed.all_sum([1, 2.5]) == [1.0, 2.5]
    assert distributed.broadcast_object({"a": 1}) == {"a": 1}


def test_torchrun_without_a_process_group_is_refused(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(RuntimeError, match="launched by torchrun as rank 1 of 2, but "
                                           "torch.distributed has no process group"):
        distributed.processes()
    monkeypatch.setenv("WORLD_SIZE", "1")  # a single process under torchrun needs no group
    monkeypatch.setenv("RANK", "0")
    assert distributed.processes() == distributed.Processes()


def test_backend_gloo_on_cpu_nccl_on_gpu():
    assert distributed.backend("cpu") == "gloo"
    assert distributed.backend("cuda:1") == "nccl"


def test_two_processes_sum_gradients_and_share_the_main_state(tmp_path):
    result = torchrun(tmp_path, """
        import json, torch
        from nlgm import distributed
        procs, device = distributed.init_process_group("cpu")
        layer = torch.nn.Linear(3, 2)
        torch.manual_seed(procs.rank)  # a different start in each process ...
        for p in layer.parameters():
            p.data.normal_()
        distributed.broadcast_state(layer)  # ... replaced by the main process's
        x = torch.arange(12.0).reshape(4, 3)[procs.rank::2]  # each process: its rows
        layer(x).pow(2).sum().backward()
        distributed.sum_gradients(layer.parameters())
        print(json.dumps({"rank": procs.rank, "world_size": procs.world_size,
                          "sums": distributed.all_sum([procs.rank, 1]),
                          "grad": layer.weight.grad.tolist(), "weight": layer.weight.tolist(),
                          "state": layer.state_dict()["bias"].tolist(),
                          "object": distributed.broadcast_object(procs.rank)}))
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    out = sorted((json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")),
                 key=lambda r: r["rank"])
    assert [r["rank"] for r in out] == [0, 1] and {r["world_size"] for r in out} == {2}
    assert out[0]["weight"] == out[1]["weight"] and out[0]["state"] == out[1]["state"]
    assert {r["object"] for r in out} == {0}
    assert out[0]["sums"] == out[1]["sums"] == [1.0, 2.0]
    # the summed gradient is that of all four rows in one process
    layer = torch.nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(out[0]["weight"]))
        layer.bias.copy_(torch.tensor(out[0]["state"]))
    layer(torch.arange(12.0).reshape(4, 3)).pow(2).sum().backward()
    for r in out:
        torch.testing.assert_close(torch.tensor(r["grad"]), layer.weight.grad)
