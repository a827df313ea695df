"""nlgm.data: streamed rows (memmap, Dataset, DataLoader) read in the in-memory path's batches,
with one clear error for each kind of bad input."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from nlgm.data import GlobalBatchSampler, is_streamed, stream
from nlgm.train import minibatches


class RowsOf(Dataset):
    """A map-style Dataset of (row, label) pairs, each row shaped like an image (1, 2, d/2)."""

    def __init__(self, X):
        self.X = X

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        return torch.as_tensor(self.X[i]).reshape(1, 2, -1), i % 10


class Stream(IterableDataset):
    def __init__(self, rows):
        self.rows = rows

    def __iter__(self):
        return iter(self.rows)


@pytest.fixture
def X():
    return np.random.default_rng(0).standard_normal((50, 6)).astype(np.float32)


@pytest.fixture
def memmap(tmp_path, X):
    np.save(tmp_path / "X.npy", X)
    return np.load(tmp_path / "X.npy", mmap_mode="r")


def in_memory_batches(x, indices, batch_size, seed, epochs=2):
    rng = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(x)[torch.as_tensor(indices)]
    return [b for _ in range(epochs) for b in minibatches(x, batch_size, rng)], rng


def streamed_batches(source, indices, batch_size, seed, epochs=2, **kwargs):
    rng = torch.Generator().manual_seed(seed)
    return [x for _ in range(epochs)
            for x, _ in source.batches(indices, batch_size, generator=rng, **kwargs)], rng


def assert_same_batches(got, expected):
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("make", ["memmap", "dataset", "loader", "workers"])
def test_same_batches_in_the_same_order_as_in_memory(X, memmap, make):
    indices = np.sort(np.random.default_rng(1).permutation(50)[:43])  # training rows
    source = {"memmap": lambda: stream(memmap, data_dim=6),
              "dataset": lambda: stream(RowsOf(X), data_dim=6),
              "loader": lambda: stream(DataLoader(RowsOf(X), batch_size=8), data_dim=6),
              "workers": lambda: stream(memmap, data_dim=6, num_workers=2)}[make]()
    expected, rng_in_memory = in_memory_batches(X, indices, 8, seed=3)
    got, rng_streamed = streamed_batches(source, indices, 8, seed=3)
    assert_same_batches(got, expected)
    # the generator is left in the same state: the samples drawn next are the same too
    assert torch.equal(rng_in_memory.get_state(), rng_streamed.get_state())


def test_processes_share_each_global_batch_and_see_every_row_once(X, memmap):
    source, world, indices = stream(memmap, data_dim=6), 3, np.arange(3, 50)
    shares = [streamed_batches(source, indices, 8, seed=5, epochs=1, rank=r, world_size=world)[0]
              for r in range(world)]
    single, _ = streamed_batches(source, indices, 8, seed=5, epochs=1)
    assert {len(s) for s in shares} == {len(single)}  # the same number of steps everywhere
    for step, batch in enumerate(single):
        rebuilt = torch.empty_like(batch)
        for r in range(world):
            rebuilt[r::world] = shares[r][step]
        assert torch.equal(rebuilt, batch)
    seen = torch.cat([b for share in shares for b in share])
    expected = torch.as_tensor(X[3:])
    assert torch.equal(seen[seen[:, 0].argsort()], expected[expected[:, 0].argsort()])


def test_sampler_global_sizes_and_the_last_small_batch():
    sampler = GlobalBatchSampler(np.arange(10), 4, rank=1, world_size=3)
    assert sampler.global_sizes() == [4, 4, 2] and len(sampler) == 3
    assert list(sampler) == [[1], [5], [9]]  # rank 1 of 3: batches [0..3], [4..7], [8, 9]
    assert list(GlobalBatchSampler(np.arange(10), 4, rank=2, world_size=3))[-1] == []
    assert GlobalBatchSampler(np.arange(10), 4, drop_last=True).global_sizes() == [4, 4]


def test_iterable_dataset_in_its_own_order_shared_by_processes(X):
    source = stream(Stream(list(X)), data_dim=6)
    assert source.n_rows is None and not source.indexable
    batches = [(x, m) for x, m in source.batches(None, 16)]
    assert [m for _, m in batches] == [16, 16, 16, 2]
    assert torch.equal(torch.cat([x for x, _ in batches]), torch.as_tensor(X))
    share = torch.cat([x for x, _ in source.batches(None, 16, rank=1, world_size=2)])
    assert torch.equal(share, torch.as_tensor(np.concatenate([X[i:i + 16][1::2]
                                                              for i in range(0, 50, 16)])))


def test_moments_match_numpy(X, memmap):
    for source in (stream(memmap, data_dim=6), stream(Stream(list(X)), data_dim=6)):
        n, mean, var = source.moments(None)
        assert n == 50
        np.testing.assert_allclose(mean, X.astype(float).mean(0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(var, X.astype(float).var(0), rtol=1e-12)
    n, mean, _ = stream(memmap, data_dim=6).moments(np.arange(0, 50, 7))
    assert n == 8
    np.testing.assert_allclose(mean, X[::7].astype(float).mean(0), rtol=1e-12, atol=1e-12)


def test_large_offset_moments_do_not_cancel(tmp_path):
    X = 1e6 + np.random.default_rng(0).standard_normal((10000, 2))
    np.save(tmp_path / "big.npy", X)
    n, mean, var = stream(np.load(tmp_path / "big.npy", mmap_mode="r"), data_dim=2).moments()
    seen = X.astype(np.float32).astype(float)  # the rows as the float32 model sees them
    np.testing.assert_allclose(var, seen.var(0), rtol=1e-9)


def test_is_streamed(X, memmap):
    assert is_streamed(memmap) and is_streamed(RowsOf(X)) and is_streamed(DataLoader(RowsOf(X)))
    assert not is_streamed(X) and not is_streamed(torch.as_tensor(X))


# --------------------------------------------------------------------------- bad input
def first_batch(source, **kwargs):
    return next(iter(source.batches(np.arange(source.n_rows or 0) if source.indexable else None,
                                    8, generator=torch.Generator().manual_seed(0), **kwargs)))


@pytest.mark.parametrize("workers", [0, 2])
def test_dataset_of_the_wrong_width(X, workers):
    with pytest.raises(ValueError, match=r"X \(a Dataset\) yielded rows of 6 values; the model has "
                                         "data_dim=5"):
        first_batch(stream(RowsOf(X), data_dim=5, num_workers=workers))


def test_dataset_of_rows_of_different_widths():
    rows = [np.zeros(4)] * 5 + [np.zeros(3)] * 5
    with pytest.raises(ValueError, match=r"yielded rows of \[3, 4\] values"):
        for _ in stream(Stream(rows), data_dim=4).batches(None, 8):
            pass


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values(X, tmp_path, bad):
    X = X.copy()
    X[17, 2] = bad
    np.save(tmp_path / "bad.npy", X)
    for source in (stream(np.load(tmp_path / "bad.npy", mmap_mode="r"), data_dim=6),
                   stream(RowsOf(X), data_dim=6), stream(Stream(list(X)), data_dim=6)):
        with pytest.raises(ValueError, match="NaN or infinite"):
            for _ in source.batches(None, 8):
                pass


def test_values_too_large_for_float32(X):
    X = X.astype(np.float64)
    X[3, 0] = 1e300
    with pytest.raises(ValueError, match="too large for float32"):
        for _ in stream(RowsOf(X), data_dim=6).batches(None, 8):
            pass


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, np.complex64, np.bool_])
def test_memmap_of_the_wrong_dtype(tmp_path, dtype):
    np.save(tmp_path / "X.npy", np.ones((5, 3), dtype=dtype))
    with pytest.raises(TypeError, match=f"memmap of dtype {np.dtype(dtype)}; expected floating"):
        stream(np.load(tmp_path / "X.npy", mmap_mode="r"), data_dim=3)


def test_memmap_of_the_wrong_shape(tmp_path):
    np.save(tmp_path / "X.npy", np.ones((5, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"shape \(5, 3\); expected \(N, 4\)"):
        stream(np.load(tmp_path / "X.npy", mmap_mode="r"), data_dim=4)


def test_drop_last_that_leaves_no_batch(X):
    source = stream(DataLoader(RowsOf(X), batch_size=64, drop_last=True), data_dim=6)
    with pytest.raises(ValueError, match="drop_last=True and batch_size=64, but only 50 rows"):
        first_batch(source)
    # read in order (moments, validation) every row counts
    assert source.moments()[0] == 50


def test_loader_batch_size_and_drop_last_are_kept(X):
    source = stream(DataLoader(RowsOf(X), batch_size=16, drop_last=True), data_dim=6)
    sizes = [len(x) for x, _ in source.batches(np.arange(50), 8,
                                               generator=torch.Generator().manual_seed(0))]
    assert sizes == [16, 16, 16]


def test_not_a_data_source():
    with pytest.raises(TypeError, match="got dict"):
        stream({}, data_dim=3)
    with pytest.raises(ValueError, match="num_workers"):
        stream(RowsOf(np.zeros((4, 3))), data_dim=3, num_workers=-1)


# --------------------------------------------------------------------------- nlgm.fit on streams
from nlgm import NLGM, fit  # noqa: E402


@pytest.fixture
def data(tmp_path):
    """Rows near a curve in 8 dimensions, in memory (float32) and as a memmap of the same."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((300, 1))
    X = np.hstack([np.sin(k * z) for k in range(1, 9)]) + 0.1 * rng.standard_normal((300, 8))
    X = X.astype(np.float32)
    np.save(tmp_path / "X.npy", X)
    return X, np.load(tmp_path / "X.npy", mmap_mode="r")


def trained(X, **kwargs):
    model = NLGM(8, 2, hidden=(16,), seed=0)
    history = fit(model, X, **dict(dict(epochs=4, batch_size=32, progress=False, seed=3), **kwargs))
    return model, history


def test_fit_streamed_follows_the_in_memory_trajectory(data):
    X, memmap = data
    model_in_memory, expected = trained(X)
    for source in (memmap, RowsOf(X), DataLoader(RowsOf(X), batch_size=32)):
        model, got = trained(source)
        # the same batches, samples and validation rows; the starting moments are summed in
        # float64 when streamed and in float32 in memory, so the two agree to float32 rounding
        np.testing.assert_allclose(got.train_elbo, expected.train_elbo, rtol=1e-5)
        np.testing.assert_allclose(got.val_elbo, expected.val_elbo, rtol=1e-5)
        assert got.best_epoch == expected.best_epoch


def test_fit_streamed_from_the_same_start_is_the_in_memory_fit_exactly(data):
    X, memmap = data
    runs = []
    for source in (X, memmap):
        model = NLGM(8, 2, hidden=(16,), seed=0).init_from_data(X)
        history = fit(model, source, epochs=3, batch_size=32, progress=False, initialise=False)
        runs.append((history, model.state_dict()))
    (expected, state), (got, streamed_state) = runs
    assert got.train_elbo == expected.train_elbo and got.val_elbo == expected.val_elbo
    for name in state:
        assert torch.equal(state[name], streamed_state[name]), name


def test_fit_streamed_resumes_from_its_checkpoint(data, tmp_path, ctrl_c_on_call):
    from nlgm.train import ELBOAscent

    X, memmap = data
    _, whole = trained(memmap)
    ctrl_c_on_call(ELBOAscent, "reestimate", 2 * 9 + 3)  # 9 batches an epoch: Ctrl-C in epoch 3
    with pytest.warns(UserWarning, match="Interrupted"):
        _, interrupted = trained(memmap, checkpoint=tmp_path / "c.pt")
    assert interrupted.epoch == [1, 2]
    _, resumed = trained(memmap, checkpoint=tmp_path / "c.pt")
    assert resumed.epoch == [1, 2, 3, 4]
    assert resumed.val_elbo == whole.val_elbo and resumed.train_elbo == whole.train_elbo


def test_fit_iterable_dataset_trains_on_all_its_rows(data):
    X, _ = data
    model, history = trained(Stream(list(X)))
    assert len(history.epoch) == 4 and np.isnan(history.val_elbo).all()
    assert history.train_elbo[-1] > history.train_elbo[0]
    with pytest.raises(ValueError, match="no rows can be held out"):
        trained(Stream(list(X)), val_fraction=0.1)


def test_fit_refuses_bad_streams_with_one_clear_error(data):
    X, _ = data
    with pytest.raises(ValueError, match="drop_last=True and batch_size=512"):
        trained(DataLoader(RowsOf(X), batch_size=512, drop_last=True))
    with pytest.raises(ValueError, match="yielded rows of 6 values; the model has data_dim=8"):
        trained(RowsOf(X[:, :6]))
    bad = X.copy()
    bad[5, 5] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        trained(RowsOf(bad))


# --------------------------------------------------------------------------- larger than memory
def rss_anon_mib():
    """The process's anonymous resident memory (heap, not file pages of a memmap), in MiB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    pytest.skip("no RssAnon in /proc/self/status (not Linux)")


@pytest.fixture(scope="module")
def big_npy(tmp_path_factory):
    """A 3 GB float32 .npy of 956,000 rows of 784 uniform pixels, written in chunks; deleted
    afterwards."""
    import shutil

    folder = tmp_path_factory.mktemp("big")
    if shutil.disk_usage(folder).free < 8e9:
        pytest.skip("needs 8 GB of free disk for a 3 GB file")
    path = folder / "X.npy"
    N, d = 956_000, 784  # 2.998e9 bytes
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(N, d))
    rng = np.random.default_rng(0)
    for start in range(0, N, 50_000):
        out[start:start + 50_000] = rng.random((min(50_000, N - start), d), dtype=np.float32)
    out.flush()
    del out
    yield path
    path.unlink()


@pytest.mark.slow
def test_an_epoch_over_a_3_gb_memmap_keeps_anonymous_memory_under_1_gib(big_npy):
    import threading

    X = np.load(big_npy, mmap_mode="r")
    assert X.nbytes > 2.9e9
    model = NLGM(784, 20, hidden=(256,), seed=0)
    peak, done = [rss_anon_mib()], threading.Event()

    def sample():
        while not done.wait(0.05):
            peak[0] = max(peak[0], rss_anon_mib())

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        history = fit(model, X, epochs=1, batch_size=1024, val_fraction=0.01, progress=False)
    finally:
        done.set()
        sampler.join()
    assert len(history.epoch) == 1 and np.isfinite(history.val_elbo[0])
    print(f"peak RssAnon during the epoch: {peak[0]:.0f} MiB ({history.seconds[-1]:.0f} s)")
    assert peak[0] < 1024


@pytest.mark.slow
def test_in_memory_subset_of_the_big_file_follows_the_streamed_trajectory(big_npy):
    streamed = np.load(big_npy, mmap_mode="r")[:3000]  # still a memmap
    runs = []
    for X in (streamed, np.array(streamed)):
        model = NLGM(784, 20, hidden=(256,), seed=0)
        runs.append(fit(model, X, epochs=3, batch_size=128, progress=False, seed=1))
    # the same batches and noise; only the starting moments differ (float64 sums when
    # streamed, float32 in memory), by float32 rounding
    np.testing.assert_allclose(runs[0].train_elbo, runs[1].train_elbo, rtol=1e-5)
    np.testing.assert_allclose(runs[0].val_elbo, runs[1].val_elbo, rtol=1e-5)
