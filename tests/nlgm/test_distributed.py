"""nlgm.distributed: processes started by torchrun (two CPU processes talking through gloo)."""
import copy
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import nlgm.train
from nlgm import NLGM, distributed, fit

ROOT = Path(__file__).resolve().parents[2]  # this worktree: the processes import its nlgm


def torchrun(tmp_path, script, n=2, args=(), timeout=120):
    """Run ``script`` (Python source) in n processes under torchrun; the completed process."""
    (tmp_path / "script.py").write_text(textwrap.dedent(script))
    # (a process killed by a signal prints every Python thread's stack: faulthandler)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", PYTHONFAULTHANDLER="1")
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


def test_fit_under_torchrun_without_a_process_group_is_refused(monkeypatch, tmp_path):
    for name, value in (("RANK", "0"), ("WORLD_SIZE", "2"), ("LOCAL_RANK", "0")):
        monkeypatch.setenv(name, value)
    model = NLGM(8, 2, hidden=(4,), seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(RuntimeError, match="no process group: call "
                                           "nlgm.distributed.init_process_group"):
        fit(model, curve(20), epochs=1, progress=False, checkpoint=tmp_path / "c.pt")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not (tmp_path / "c.pt").exists()


def test_backend_gloo_on_cpu_nccl_on_gpu():
    assert distributed.backend("cpu") == "gloo"
    assert distributed.backend("cuda:1") == "nccl"


STEPS = """
    import json, sys
    import numpy as np, torch
    from torch.nn.parallel import DistributedDataParallel
    from nlgm import NLGM, distributed, train

    processes, _ = distributed.init_process_group("cpu")
    forwards, ddp_forward = [], DistributedDataParallel.forward

    def spy(self, x, completion, block, beta):  # records each step whose loss DDP computed
        forwards.append(block)
        return ddp_forward(self, x, completion, block, beta)

    DistributedDataParallel.forward = spy
    X, out = torch.from_numpy(np.load(sys.argv[1])), {}
    for scheme in ("joint", "alternating"):
        model = NLGM(6, 2, hidden=(5,), seed=processes.rank).double()  # DDP sends rank 0's
        trainer = train.DataParallelELBOAscent(model, processes=processes, lr=0.05,
                                               n_samples=2, scheme=scheme)
        trainer.beta = 0.5
        rng = torch.Generator().manual_seed(1)
        for rows in (slice(0, 7), slice(7, 8)):  # global batches of 7 rows, then 1 (4 + 3, 1 + 0)
            batch = X[rows][processes.rank::2], rows.stop - rows.start
            trainer.reestimate(batch, trainer.complete(batch, rng))
        out[scheme] = {"state": {k: v.tolist() for k, v in model.state_dict().items()},
                       "elbo": trainer.epoch_elbo(),
                       "ddp": isinstance(trainer.loss, DistributedDataParallel)}
    out.update(forwards=forwards, sums=distributed.all_sum([processes.rank, 1]),
               object=distributed.broadcast_object(processes.rank))
    with open(f"rank{processes.rank}.json", "w") as handle:  # (two stdouts would interleave)
        json.dump(out, handle)
    distributed.close_process_group()
"""


@pytest.fixture(scope="module")
def ddp_steps(tmp_path_factory):
    """STEPS in two processes; the data and each rank's output."""
    folder = tmp_path_factory.mktemp("steps")
    X = np.random.default_rng(0).standard_normal((8, 6))
    np.save(folder / "X.npy", X)
    result = torchrun(folder, STEPS, args=(str(folder / "X.npy"),))
    assert result.returncode == 0, result.stderr[-8000:]
    return X, [json.loads((folder / f"rank{r}.json").read_text()) for r in range(2)]


def test_two_processes_sum_numbers_and_share_the_main_processs_objects(ddp_steps):
    _, out = ddp_steps
    assert out[0]["sums"] == out[1]["sums"] == [1.0, 2.0]
    assert out[0]["object"] == out[1]["object"] == 0


@pytest.mark.parametrize("scheme", ["joint", "alternating"])
def test_ddp_steps_of_two_processes_are_the_steps_of_one_on_the_global_batch(ddp_steps, scheme):
    # Two processes hold 4 and 3 rows of a global batch of 7, then 1 and 0 of a batch of 1 (an
    # empty share that must still join the average), and start from different parameters.
    # Every step's loss comes out of DistributedDataParallel's forward; afterwards both copies
    # of the model are the same, and they are the model that one process trains on the whole
    # global batches with the same noise, up to float64 rounding (the gradient is summed in
    # another order).
    X, out = ddp_steps
    for r in out:  # one DDP forward per Adam step: (theta, phi) per batch when alternating
        assert r[scheme]["ddp"]
        assert r["forwards"] == ["joint"] * 2 + ["theta", "phi"] * 2
    assert out[0][scheme] == out[1][scheme]  # the same parameters, bit for bit, and ELBO

    model = NLGM(6, 2, hidden=(5,), seed=0).double()
    start = copy.deepcopy(model.state_dict())
    trainer = nlgm.train.ELBOAscent(model, lr=0.05, n_samples=2, scheme=scheme)
    trainer.beta = 0.5
    rng = torch.Generator().manual_seed(1)
    x = torch.from_numpy(X)
    for rows in (slice(0, 7), slice(7, 8)):
        trainer.reestimate(x[rows], trainer.complete(x[rows], rng))
    assert out[0][scheme]["elbo"] == pytest.approx(trainer.epoch_elbo(), rel=1e-12)
    for name, value in model.state_dict().items():
        np.testing.assert_allclose(out[0][scheme]["state"][name], value.numpy(), rtol=0,
                                   atol=1e-10, err_msg=name)
    # (the steps did move the model: Adam's first steps are about lr = 0.05)
    assert max(float((model.state_dict()[k] - v).abs().max()) for k, v in start.items()) > 0.05


# --------------------------------------------------------------------------- nlgm.fit under torchrun
FIT = """
    import json, os, sys
    import numpy as np, torch
    from nlgm import NLGM, distributed, fit, train

    def threads_of_this_process():  # the names of its threads, C++ threads included
        tasks = "/proc/self/task"
        return sorted(open(f"{tasks}/{t}/comm").read().strip() for t in os.listdir(tasks))

    processes, _ = distributed.init_process_group("cpu")
    X, folder, crash_at = np.load(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    reestimate = train.DataParallelELBOAscent.reestimate

    def spy(self, batch, completion):  # records the rows; "crashes" at call crash_at
        calls[0] += 1
        if calls[0] == crash_at:
            os._exit(3)
        seen.append(batch[0].clone())
        return reestimate(self, batch, completion)

    train.DataParallelELBOAscent.reestimate = spy
    for batch_size in sys.argv[4].split(","):
        seen, calls, out = [], [0], os.path.join(folder, batch_size)
        os.makedirs(out, exist_ok=True)
        model = NLGM(8, 2, hidden=(16,), seed=processes.rank)  # rank 0's start is broadcast
        history = fit(model, X, epochs=4, batch_size=int(batch_size), progress=False, seed=3,
                      checkpoint=os.path.join(out, "checkpoint.pt"))
        np.save(os.path.join(out, f"seen{processes.rank}.npy"), torch.cat(seen).numpy())
        with open(os.path.join(out, f"rank{processes.rank}.json"), "w") as handle:
            json.dump({"history": {k: getattr(history, k)
                                   for k in ("epoch", "train_elbo", "val_elbo")},
                       "state": {k: v.tolist() for k, v in model.state_dict().items()}}, handle)
    threads = {"open": threads_of_this_process()}
    distributed.close_process_group()
    threads["closed"] = threads_of_this_process()
    with open(os.path.join(folder, f"threads{processes.rank}.json"), "w") as handle:
        json.dump(threads, handle)
"""


def curve(n=300, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 1))
    X = np.hstack([np.sin(k * z) for k in range(1, 9)]) + 0.1 * rng.standard_normal((n, 8))
    return X.astype(np.float32)


def fit_in_two_processes(folder, batch_sizes=(32,), crash_at=0):
    """Run fit in two processes for each batch size; the result and {batch size: the ranks'
    histories and final states}."""
    folder.mkdir(exist_ok=True)
    np.save(folder / "X.npy", curve())
    result = torchrun(folder, FIT, args=(str(folder / "X.npy"), str(folder), str(crash_at),
                                         ",".join(map(str, batch_sizes))))
    runs = {b: [json.loads((folder / str(b) / f"rank{r}.json").read_text())
                for r in range(2) if (folder / str(b) / f"rank{r}.json").exists()]
            for b in batch_sizes}
    return result, runs


def fit_in_one_process(batch_size=32):
    model = NLGM(8, 2, hidden=(16,), seed=0)
    return fit(model, curve(), epochs=4, batch_size=batch_size, progress=False, seed=3), model


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """One run of fit in two processes (270 training rows: 8 global batches of 32 and one of 14)
    and one with batch_size=269, whose last global batch (1 row) leaves rank 1 nothing."""
    folder = tmp_path_factory.mktemp("two")
    result, runs = fit_in_two_processes(folder, batch_sizes=(32, 269))
    assert result.returncode == 0, result.stderr[-8000:]
    return folder, runs



@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [32, 269])
def test_two_processes_match_one_process_of_the_same_global_batch(two_processes, batch_size):
    _, runs = two_processes
    ranks = runs[batch_size]
    assert ranks[0]["state"] == ranks[1]["state"]  # the copies stay equal
    assert ranks[0]["history"] == ranks[1]["history"]  # the ELBOs are reduced over processes
    history, model = fit_in_one_process(batch_size)
    # The two processes draw the global batch's noise and sum its gradient in two halves, so they
    # follow the one-process run up to float32 rounding (the order of the sums), not up to
    # Monte Carlo noise: the ELBO of the 30 validation rows with J = 1 has a standard deviation
    # of 0.09 nats here (200 noise seeds), and the runs agree to 1.5e-6 nats (measured), so
    # 1e-4 leaves room for other rounding and is a thousand times tighter than the noise.
    np.testing.assert_allclose(ranks[0]["history"]["val_elbo"], history.val_elbo, atol=1e-4)
    np.testing.assert_allclose(ranks[0]["history"]["train_elbo"], history.train_elbo, atol=1e-4)
    for name, value in model.state_dict().items():
        np.testing.assert_allclose(np.array(ranks[0]["state"][name]), value.numpy(), atol=1e-5)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="threads are read from /proc")
def test_closing_the_group_stops_its_threads(two_processes):
    # Threads of gloo still running while the interpreter shuts down made a process abort at
    # exit in CI ("terminate called without an active exception"). They ran on because DDP
    # imports torch.distributed.nn.functional, whose functions keep the group that exists at
    # its import as a default argument, so destroying the group did not end it: this fails
    # if nlgm.distributed.init_process_group does not import that module before the group.
    folder, _ = two_processes
    for rank in range(2):
        threads = json.loads((folder / f"threads{rank}.json").read_text())
        assert any("gloo" in name for name in threads["open"]), threads  # (their names)
        assert not any("gloo" in name for name in threads["closed"]), threads


@pytest.mark.slow
def test_every_training_row_once_per_epoch(two_processes):
    folder, _ = two_processes
    from lgm.data import split_indices

    train_rows = curve()[np.sort(split_indices(300, 30, 3)[0])]
    for epoch in range(4):
        seen = np.concatenate([np.load(folder / "32" / f"seen{r}.npy")[epoch * 135:(epoch + 1) * 135]
                               for r in range(2)])  # 135 rows per process and epoch
        assert len(seen) == 270
        key = np.lexsort(seen.T[::-1])
        np.testing.assert_array_equal(seen[key], train_rows[np.lexsort(train_rows.T[::-1])])


@pytest.mark.slow
def test_interrupted_run_resumes_from_rank_0s_checkpoint(two_processes, tmp_path):
    _, runs = two_processes
    result, ranks = fit_in_two_processes(tmp_path, crash_at=2 * 9 + 3)  # in epoch 3
    assert result.returncode != 0 and ranks[32] == []
    saved = torch.load(tmp_path / "32" / "checkpoint.pt", weights_only=True)
    assert saved["history"]["epoch"] == [1, 2]
    result, ranks = fit_in_two_processes(tmp_path)  # the same command again
    assert result.returncode == 0, result.stderr[-8000:]
    assert ranks[32][0]["history"] == runs[32][0]["history"]  # as if never interrupted
    assert ranks[32][0]["state"] == runs[32][0]["state"]
    # rows of epochs 3 and 4 only, in the resumed run
    assert sum(len(np.load(tmp_path / "32" / f"seen{r}.npy")) for r in range(2)) == 2 * 270


@pytest.mark.slow
def test_cli_under_torchrun_rank_0_writes_the_run_folder(tmp_path):
    np.save(tmp_path / "X.npy", curve(200))
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "nlgm", "train", "--data", str(tmp_path / "X.npy"), "--latent", "2",
               "--hidden", "16", "--epochs", "3", "--out", str(tmp_path / "run"), "--no-progress"]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-8000:]
    assert result.stdout.count("trained 3 epochs") == 1  # rank 0 reports, rank 1 is silent
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["world_size"] == 2
    for name in ("model.pt", "checkpoint.pt", "history.csv", "samples.png", "elbo.png"):
        assert (tmp_path / "run" / name).is_file()
    # the same command again resumes from the checkpoint: nothing left to train
    history = (tmp_path / "run" / "history.csv").read_text()
    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0 and "trained 3 epochs" in again.stdout
    assert (tmp_path / "run" / "history.csv").read_text() == history
