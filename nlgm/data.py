"""Training data that need not fit in memory: rows read batch by batch as training goes.

:func:`nlgm.fit` keeps an array or tensor that is in memory whole on the device and cuts its
minibatches by indexing (no DataLoader: the fast path). Everything else is *streamed* through
PyTorch's :class:`~torch.utils.data.DataLoader`, which reads the rows of a batch (in worker
processes if asked), collates them and, for a GPU, puts them in pinned memory so that the copy
to the device does not block:

- a ``numpy.memmap``, e.g. ``np.load("X.npy", mmap_mode="r")``: a file larger than memory, of
  which only the rows of the current batch are read (:class:`Rows`);
- a map-style :class:`~torch.utils.data.Dataset` (``len`` and ``dataset[i]``), each item a row
  of d numbers (any shape with d elements, such as a 1 x 28 x 28 image), or a tuple whose first
  element is (``(image, label)``; the label is ignored);
- a :class:`~torch.utils.data.DataLoader` over such a Dataset: its batch size, ``drop_last``,
  workers and ``collate_fn`` are kept (memory is pinned when the device is a GPU), its
  sampler is replaced by :func:`nlgm.fit`'s seeded one, so that the seed sets the order,
  validation rows can be held out and, under ``torchrun``, each process reads only its share;
- an :class:`~torch.utils.data.IterableDataset` (or a DataLoader over one): read in the order it
  yields, one pass per epoch. It has no index, so no rows can be held out from it.

The order of a map-style source is that of the in-memory path: one ``torch.randperm`` of the
training rows per epoch from the same generator, cut into consecutive batches
(:class:`GlobalBatchSampler`). With the same seed, the model therefore sees the same batches in
the same order, and its ELBO follows the same trajectory, whether X is in memory or streamed
(on the CPU; on a GPU the in-memory path shuffles on the GPU, with its own generator).
"""
from numbers import Integral

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

#: Rows per batch when the data are read in order (the moments and the validation rows).
READ_ROWS = 4096


def is_streamed(X):
    """Whether :func:`nlgm.fit` streams ``X`` (a memmap, Dataset or DataLoader).

    Anything else is taken as an array in memory.
    """
    return isinstance(X, (np.memmap, Dataset, DataLoader))


class Rows(Dataset):
    """The rows of a 2-D array (a memmap) as a map-style Dataset whose items are whole batches.

    ``rows[[i, j, k]]`` reads rows i, j and k (in increasing order, the fastest for a file)
    and returns them in the order asked for, as one array (3, d). Used with
    ``DataLoader(rows, sampler=batch_sampler, batch_size=None)``, one read per batch.
    """

    def __init__(self, array):
        self.array = array

    def __len__(self):
        return len(self.array)

    def __getitem__(self, index):
        index = np.asarray(index, dtype=np.int64)
        order = np.argsort(index, kind="stable")
        batch = np.empty((len(index), self.array.shape[1]), dtype=self.array.dtype)
        batch[order] = self.array[index[order]]
        return batch


class GlobalBatchSampler(Sampler):
    """Batches of ``indices``, shuffled each epoch by ``generator``; this process's share of each.

    An epoch draws one permutation of the indices (``torch.randperm`` with ``generator``, as
    the in-memory path does) and cuts it into consecutive global batches of ``batch_size``.
    Process ``rank`` of ``world_size`` gets every ``world_size``-th index of each global batch,
    starting at ``rank``: together the processes see every index exactly once per epoch, take
    the same number of steps, and one process sees exactly the in-memory path's batches (the
    role of :class:`~torch.utils.data.DistributedSampler`, which pads or drops indices instead
    and would show some rows twice or never).

    Parameters
    ----------
    indices : array_like of int
        The rows to draw from (the training rows).
    batch_size : int
        Rows per global batch.
    generator : torch.Generator, optional
        None keeps the order of ``indices`` (for reading validation rows).
    rank, world_size : int
    drop_last : bool
        Leave out a last global batch smaller than ``batch_size``.
    """

    def __init__(self, indices, batch_size, *, generator=None, rank=0, world_size=1,
                 drop_last=False):
        self.indices = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        self.batch_size, self.generator = batch_size, generator
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last

    def global_sizes(self):
        """The size of each global batch of an epoch (the same in every epoch)."""
        n, B = len(self.indices), self.batch_size
        sizes = [B] * (n // B)
        if n % B and not self.drop_last:
            sizes.append(n % B)
        return sizes

    def __iter__(self):
        order = self.indices
        if self.generator is not None:  # drawn where the generator is, as in memory
            order = order[torch.randperm(len(order), generator=self.generator,
                                         device=self.generator.device).cpu()]
        for start, size in zip(range(0, len(order), self.batch_size), self.global_sizes()):
            yield order[start:start + size][self.rank::self.world_size].tolist()

    def __len__(self):
        return len(self.global_sizes())


def shares(x, batch_size, generator=None, rank=0, world_size=1):
    """:class:`GlobalBatchSampler` for a tensor in memory: this process's rows of each global
    batch of x, as ``(rows, m)`` with m the global batch's size.

    The order is ``torch.randperm`` with ``generator`` on x's device, as in the one-process
    fast path (``nlgm.train.minibatches``); None keeps the rows in order.
    """
    order = (torch.randperm(len(x), generator=generator, device=x.device)
             if generator is not None else torch.arange(len(x), device=x.device))
    for start in range(0, len(x), batch_size):
        batch = order[start:start + batch_size]
        yield x[batch[rank::world_size]], len(batch)


class Stream:
    """A streamed data set: its rows read in batches by a DataLoader, checked, on the device.

    Build it with :func:`stream`. ``n_rows`` is None for an iterable source (no index).
    """

    def __init__(self, dataset, *, data_dim, dtype, name, batch_size=None, drop_last=False,
                 collate_fn=None, num_workers=0, batched=False):
        self.dataset, self.data_dim, self.dtype, self.name = dataset, data_dim, dtype, name
        self.batch_size, self.drop_last = batch_size, drop_last
        self.collate_fn, self.num_workers = collate_fn, num_workers
        self.batched = batched
        self.indexable = not isinstance(dataset, IterableDataset)
        self.n_rows = len(dataset) if self.indexable else None

    def batches(self, indices, batch_size, *, generator=None, rank=0, world_size=1,
                device="cpu"):
        """This process's share of each global batch, as ``(x, m)`` on ``device``.

        x : Tensor, shape (m_rank, d), the rows of this process; m : int, the size of the
        global batch (the sum of m_rank over the processes).

        Parameters
        ----------
        indices : array_like of int or None
            The rows to read (None: all, in order; the only choice for an iterable source).
        batch_size : int
            Rows per global batch; a DataLoader's own batch size, if it has one, is used instead.
        generator : torch.Generator, optional
            Shuffles the rows each epoch (map-style sources); None reads them in order.
        rank, world_size : int
            This process and the number of processes (:mod:`nlgm.distributed`).
        device : torch.device or str
        """
        device = torch.device(device)
        shuffled = generator is not None  # training; in order: moments, validation
        if shuffled:
            batch_size = self.batch_size or batch_size
        if not self.indexable:
            return self._iterable_batches(batch_size, rank, world_size, device)
        indices = np.arange(self.n_rows) if indices is None else indices
        sampler = GlobalBatchSampler(indices, batch_size, generator=generator, rank=rank,
                                     world_size=world_size, drop_last=self.drop_last and shuffled)
        if not len(sampler):
            raise ValueError(
                f"{self.name} is a DataLoader with drop_last=True and batch_size={batch_size}, "
                f"but only {len(indices)} rows are to be read: no batch would be left. Use a "
                "smaller batch_size or drop_last=False.")
        pin = device.type == "cuda"  # page-locked host memory: the copy does not block
        if self.batched:
            loader = DataLoader(self.dataset, sampler=sampler, batch_size=None,
                                collate_fn=_as_tensor, num_workers=self.num_workers,
                                pin_memory=pin)
        else:
            loader = DataLoader(self.dataset, batch_sampler=sampler,
                                collate_fn=self.collate_fn or _stack_rows,
                                num_workers=self.num_workers, pin_memory=pin)
        return self._to_device(zip(loader, sampler.global_sizes()), device)

    def _iterable_batches(self, batch_size, rank, world_size, device):
        """Global batches of an iterable source, every process reading all of them (it has no
        index to shard by) and keeping its share."""
        if isinstance(self.dataset, DataLoader):
            loader = self.dataset
        else:
            loader = DataLoader(self.dataset, batch_size=batch_size, collate_fn=_stack_rows,
                                num_workers=self.num_workers, pin_memory=device.type == "cuda")

        def shares():
            for batch in loader:
                x = self.check(batch)
                yield x[rank::world_size], len(x)
        return self._to_device(shares(), device, checked=True)

    def _to_device(self, pairs, device, checked=False):
        non_blocking = device.type == "cuda"
        for batch, m in pairs:
            x = batch if checked else self.check(batch)
            yield x.to(device, non_blocking=non_blocking), m

    def check(self, batch):
        """A batch as a finite (B, d) tensor of the model's dtype, or one clear error.

        Runs in the main process, on the host, before the copy to the device.
        """
        if isinstance(batch, _Ragged):
            raise ValueError(f"{self.name} yielded rows of {batch.widths} values; the model has "
                             f"data_dim={self.data_dim} (every row must have that many).")
        if isinstance(batch, (tuple, list)) and batch:
            batch = batch[0]  # (x, y) from a collate_fn: the labels are ignored
        if isinstance(batch, np.ndarray):
            batch = torch.from_numpy(np.ascontiguousarray(batch))
        if not isinstance(batch, torch.Tensor) or batch.ndim < 1:
            raise TypeError(f"{self.name} yielded a batch of type {type(batch).__name__}; "
                            "expected a tensor or array of rows (or a tuple whose first element "
                            "is one).")
        x = batch.reshape(len(batch), -1)
        if x.shape[1] != self.data_dim:
            raise ValueError(f"{self.name} yielded rows of {x.shape[1]} values; the model has "
                             f"data_dim={self.data_dim}.")
        if x.is_complex() or not (x.is_floating_point() or x.dtype in _INTEGER_DTYPES):
            raise TypeError(f"{self.name} yielded values of dtype {x.dtype}; expected real "
                            "numbers.")
        x = x.to(self.dtype)
        if not torch.isfinite(x).all():
            raise ValueError(f"{self.name} holds NaN or infinite values (or values too large for "
                             f"{str(self.dtype).removeprefix('torch.')}); remove or impute them "
                             "first.")
        return x

    def moments(self, indices=None):
        """The number, mean and variance (divided by the number) of the rows ``indices``.

        One pass in order, :data:`READ_ROWS` rows at a time, each batch's mean and sum of
        squared deviations merged into the running ones in float64 (Chan, Golub and LeVeque's
        pairwise update), so no cancellation grows with N.

        Returns
        -------
        n : int
        mean, var : Tensor, shape (d,), float64
        """
        n, mean, m2 = 0, torch.zeros(self.data_dim, dtype=torch.float64), 0.0
        for x, _ in self.batches(indices, READ_ROWS):
            x = x.double()
            nb, mb = len(x), x.mean(0)
            if nb == 0:
                continue
            delta = mb - mean
            m2 = m2 + ((x - mb) ** 2).sum(0) + delta**2 * n * nb / (n + nb)
            mean = mean + delta * nb / (n + nb)
            n += nb
        if n < 2:
            raise ValueError(f"{self.name} needs at least 2 rows; got {n}.")
        return n, mean, m2 / n


_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


class _Ragged:
    """What :func:`_stack_rows` returns for rows of different widths (reported by ``check``)."""

    def __init__(self, widths):
        self.widths = sorted(widths)


def _row(item):
    if isinstance(item, (tuple, list)) and item and not np.isscalar(item[0]):
        item = item[0]  # (x, label)
    return torch.as_tensor(np.asarray(item) if not isinstance(item, torch.Tensor) else item
                           ).reshape(-1)


def _stack_rows(items):
    """collate_fn of a Dataset of rows: one tensor (B, d), or :class:`_Ragged` (reported by the
    main process, so that a worker does not bury the message in its own)."""
    rows = [_row(item) for item in items]
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        return _Ragged(widths)
    return torch.stack(rows) if rows else torch.empty(0, 0)


def _as_tensor(batch):
    """collate_fn of :class:`Rows`, whose items are already batches."""
    return torch.from_numpy(batch)


def stream(X, *, data_dim, dtype=torch.float32, num_workers=0, name="X"):
    """``X`` (a memmap, Dataset or DataLoader) as a :class:`Stream`, or a clear error.

    Parameters
    ----------
    X : numpy.memmap, torch.utils.data.Dataset or DataLoader
        See the module's description.
    data_dim : int
        d: every row must have d values.
    dtype : torch.dtype
        The model's.
    num_workers : int
        Worker processes reading batches (a memmap or a Dataset); a DataLoader keeps its own.
    name : str
        How errors name X.
    """
    if isinstance(num_workers, bool) or not isinstance(num_workers, Integral) or num_workers < 0:
        raise ValueError(f"num_workers must be a non-negative integer; got {num_workers!r}.")
    common = dict(data_dim=data_dim, dtype=dtype, num_workers=num_workers)
    if isinstance(X, np.memmap):
        if X.dtype.kind != "f":
            raise TypeError(
                f"{name} is a memmap of dtype {X.dtype}; expected floating point numbers "
                f"(float32, the model's dtype, reads fastest). Convert the file once, e.g. "
                "np.save(path, np.load(path).astype(np.float32)).")
        if X.ndim != 2 or X.shape[1] != data_dim or len(X) < 2:
            raise ValueError(f"{name} is a memmap of shape {X.shape}; expected (N, {data_dim}) "
                             "with N >= 2.")
        return Stream(Rows(X), batched=True, name=f"{name} (a memmap)", **common)
    if isinstance(X, DataLoader):
        what = f"{name} (a DataLoader)"
        if X.batch_size is None and X.batch_sampler is None:
            raise ValueError(f"{what} has batch_size=None: it yields single rows; give it a "
                             "batch_size.")
        common.update(num_workers=X.num_workers)
        if isinstance(X.dataset, IterableDataset):
            return Stream(X, name=what, **common)
        user_collate = None if X.collate_fn is torch.utils.data.default_collate else X.collate_fn
        return Stream(X.dataset, name=what, batch_size=X.batch_size, drop_last=X.drop_last,
                      collate_fn=user_collate, **common)
    if isinstance(X, IterableDataset):
        return Stream(X, name=f"{name} (an IterableDataset)", **common)
    if isinstance(X, Dataset):
        try:
            n = len(X)
        except TypeError:
            raise TypeError(f"{name} is a map-style Dataset without __len__; give it one, or "
                            "make it an IterableDataset.") from None
        if n < 2:
            raise ValueError(f"{name} (a Dataset) has {n} rows; at least 2 are needed.")
        return Stream(X, name=f"{name} (a Dataset)", **common)
    raise TypeError(f"{name} must be an array, a tensor, a numpy.memmap, a torch Dataset or a "
                    f"DataLoader; got {type(X).__name__}.")
