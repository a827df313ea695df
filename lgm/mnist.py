"""MNIST and Fashion-MNIST from their IDX files: where every VAE tutorial starts.

Both data sets are four files in the IDX format (:func:`lgm.data.read_idx`), 60000 training and
10000 test images of 28 x 28 pixels with values 0..255, and their labels 0..9:

    train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz
    t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz

(also accepted uncompressed, without ``.gz``). Nothing is downloaded unless asked for
(``download=True``): the package never touches the network by itself.
"""
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from lgm.checks import check_random_state
from lgm.data import read_idx

#: The four files of each data set, with the MD5 sums of the published gzipped files.
FILES = {
    "mnist": {
        "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}
#: Where ``download=True`` fetches the gzipped files from (the mirrors torchvision uses).
URLS = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
}


def data_home():
    """The cache folder of downloaded data sets.

    ``$PCA_TO_VAE_DATA`` if set, else ``$XDG_CACHE_HOME/pca-to-vae`` (``~/.cache/pca-to-vae``).
    """
    if os.environ.get("PCA_TO_VAE_DATA"):
        return Path(os.environ["PCA_TO_VAE_DATA"])
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "pca-to-vae"


def load_mnist(folder=None, *, fashion=False, split=True, dequantise=False, random_state=0,
               return_labels=False, download=False):
    """MNIST (or Fashion-MNIST) read from its four IDX files, pixels scaled to [0, 1].

    Each image becomes one row of d = 784 pixels. With ``dequantise=False`` a pixel with value
    v in 0..255 becomes v / 255; with ``dequantise=True`` it becomes (v + u) / 256 with
    u ~ U[0, 1) (seeded by ``random_state``), so that the data have a density on [0, 1)^784 and
    continuous log-likelihoods are comparable, as for :func:`lgm.data.load_digits`. The split is
    the published one: the ``train-`` files and the ``t10k-`` files.

    Parameters
    ----------
    folder : str or os.PathLike, optional
        The folder holding the four files (gzipped or not; ``train-images-idx3-ubyte`` or
        ``train-images.idx3-ubyte``). None: ``data_home()/mnist`` or
        ``data_home()/fashion-mnist``.
    fashion : bool
        Fashion-MNIST (Zalando's clothes, the same format) instead of MNIST.
    split : bool
        Return (X_train, X_test) if True, both stacked (training images first) if False.
    dequantise : bool
        Add uniform noise and divide by 256 (True) or divide by 255 (False).
    random_state : None, int or numpy.random.Generator
        Seed of the dequantisation noise only.
    return_labels : bool
        Also return the classes (0..9), after the images.
    download : bool
        If files are missing, fetch them once from ``URLS`` into ``folder``, checking their MD5
        sums. Off by default: without it a missing file is an error that says where to put it.

    Returns
    -------
    X_train : ndarray, shape (N_train, 784), and X_test : ndarray, shape (N_test, 784), float32
        When ``split=True`` (60000 and 10000 images for the published files); followed by
        y_train and y_test (int64) if ``return_labels``.
    X : ndarray, shape (N_train + N_test, 784), float32
        When ``split=False``; followed by y if ``return_labels``.

    Raises
    ------
    FileNotFoundError
        A file is missing (and ``download`` is off, or the download failed): the message names
        the files, the folder and where to get them.
    ValueError
        A file is not IDX, is truncated, or does not hold 28 x 28 images with one label 0..9 each.
    """
    for value, name in ((fashion, "fashion"), (split, "split"), (dequantise, "dequantise"),
                        (return_labels, "return_labels"), (download, "download")):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False; got {value!r}.")
    rng = check_random_state(random_state)
    which = "fashion-mnist" if fashion else "mnist"
    folder = Path(folder) if folder is not None else data_home() / which
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"folder {str(folder)!r} is a file; pass the folder that holds the files.")
    missing = [name for name in FILES[which] if _find(folder, name) is None]
    if missing and download:
        _download(which, folder, missing)
    elif missing:
        raise FileNotFoundError(_missing_message(which, folder, missing))

    parts = {}
    for part in ("train", "t10k"):
        images = read_idx(_find(folder, f"{part}-images-idx3-ubyte"))
        labels = read_idx(_find(folder, f"{part}-labels-idx1-ubyte"))
        parts[part] = _check_pair(images, labels, folder, part)
    X = {part: _scale(images, dequantise, rng) for part, (images, _) in parts.items()}
    y = {part: labels.astype(np.int64) for part, (_, labels) in parts.items()}
    if split:
        return (X["train"], X["t10k"]) + ((y["train"], y["t10k"]) if return_labels else ())
    X_all = np.concatenate([X["train"], X["t10k"]])
    return (X_all, np.concatenate([y["train"], y["t10k"]])) if return_labels else X_all


def _find(folder, name):
    """The path of ``name`` or ``name.gz`` in ``folder``, or None.

    The files are also found under the names that many copies use, with a dot before ``idx``
    (``train-images.idx3-ubyte``)."""
    for base in (name, name.replace("-idx", ".idx")):
        for candidate in (folder / f"{base}.gz", folder / base):
            if candidate.is_file():
                return candidate
    return None


def _check_pair(images, labels, folder, part):
    where = f"{folder}/{part}-*"
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise ValueError(f"{where}: the images file must hold (N, 28, 28) unsigned bytes; got "
                         f"shape {images.shape} of {images.dtype}.")
    if labels.shape != (len(images),):
        raise ValueError(f"{where}: {len(images)} images but the labels file holds shape "
                         f"{labels.shape}; the two files do not belong together.")
    if len(labels) and not (0 <= labels.min() and labels.max() <= 9):
        raise ValueError(f"{where}: labels must be 0..9; got values {labels.min()}..{labels.max()}.")
    return images, labels


def _scale(images, dequantise, rng):
    V = images.reshape(len(images), -1).astype(np.float32)
    if dequantise:
        return (V + rng.random(V.shape, dtype=np.float32)) / np.float32(256)
    return V / np.float32(255)


def _missing_message(which, folder, missing):
    names = ", ".join(f"{name}.gz" for name in missing)
    return (f"{which}: {names} not found in {folder} (gzipped or not). Download them from "
            f"{URLS[which]} into that folder, pass folder= the folder that holds them, or call "
            f"with download=True where a network is available.")


def _download(which, folder, missing):
    """Fetch the missing gzipped files into ``folder``, each checked against its MD5 sum."""
    from urllib.error import URLError
    from urllib.request import urlopen

    folder.mkdir(parents=True, exist_ok=True)
    for name in missing:
        url = f"{URLS[which]}{name}.gz"
        target = folder / f"{name}.gz"
        handle, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
        try:
            with os.fdopen(handle, "wb") as out, urlopen(url, timeout=60) as response:
                shutil.copyfileobj(response, out)
            digest = hashlib.md5(Path(tmp).read_bytes(), usedforsecurity=False).hexdigest()
            if digest != FILES[which][name]:
                raise ValueError(f"{url} has MD5 {digest}, expected {FILES[which][name]}; the "
                                 "download is damaged or the mirror changed. Nothing was kept.")
            os.replace(tmp, target)
        except (URLError, OSError) as err:
            reason = getattr(err, "reason", None) or err
            raise FileNotFoundError(f"could not download {url} ({reason}). "
                                    + _missing_message(which, folder, missing)) from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
