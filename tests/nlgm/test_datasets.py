"""lgm.mnist.load_mnist on small IDX files written here (the bytes built by hand from the format's
definition, independently of the reader); nothing is downloaded."""
import gzip
import struct

import numpy as np
import pytest

from lgm import mnist
from lgm.data import read_idx


def idx_bytes(array):
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) \
        + array.astype(np.uint8).tobytes()


def write_set(folder, n_train=5, n_test=3, gz=True, seed=0):
    """Four IDX files like MNIST's, with random images and labels; returns them."""
    rng = np.random.default_rng(seed)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
              "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test)}
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        if gz:
            with gzip.open(folder / f"{name}.gz", "wb") as handle:
                handle.write(idx_bytes(array))
        else:
            (folder / name).write_bytes(idx_bytes(array))
    return arrays


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to download fails as it would offline."""
    from urllib.error import URLError

    def refuse(*args, **kwargs):
        raise URLError("no network in the tests")

    monkeypatch.setattr("urllib.request.urlopen", refuse)


@pytest.mark.parametrize("gz", [True, False])
def test_pixels_scaled_and_labels_in_the_published_split(tmp_path, gz):
    arrays = write_set(tmp_path, gz=gz)
    X_train, X_test, y_train, y_test = mnist.load_mnist(tmp_path, return_labels=True)
    assert X_train.shape == (5, 784) and X_test.shape == (3, 784) and X_train.dtype == np.float32
    np.testing.assert_allclose(X_train, arrays["train-images-idx3-ubyte"].reshape(5, 784) / 255,
                               rtol=1e-6)
    np.testing.assert_array_equal(y_test, arrays["t10k-labels-idx1-ubyte"])
    X = mnist.load_mnist(tmp_path, split=False)
    np.testing.assert_array_equal(X, np.concatenate([X_train, X_test]))


def test_the_files_are_found_under_their_dotted_names_too(tmp_path):
    # Many copies name the files train-images.idx3-ubyte; a folder of those reads the same, and a
    # folder that mixes both spellings reads each file once, the published spelling first.
    arrays = write_set(tmp_path / "published", gz=False)
    (tmp_path / "dotted").mkdir()
    for name in arrays:
        (tmp_path / "published" / name).rename(tmp_path / "dotted" / name.replace("-idx", ".idx"))
    X_train, X_test, y_train, _ = mnist.load_mnist(tmp_path / "dotted", return_labels=True)
    np.testing.assert_allclose(X_train, arrays["train-images-idx3-ubyte"].reshape(5, 784) / 255,
                               rtol=1e-6)
    np.testing.assert_array_equal(y_train, arrays["train-labels-idx1-ubyte"])
    write_set(tmp_path / "dotted", n_train=2, n_test=1, gz=False, seed=1)
    assert mnist.load_mnist(tmp_path / "dotted")[0].shape == (2, 784)  # the published names win


def test_dequantised_pixels_lie_in_their_bins(tmp_path):
    arrays = write_set(tmp_path)
    X_train, _ = mnist.load_mnist(tmp_path, dequantise=True, random_state=3)
    V = arrays["train-images-idx3-ubyte"].reshape(5, 784)
    assert np.all(np.floor(X_train * 256) == V)  # (v + u) / 256 with u in [0, 1)
    again, _ = mnist.load_mnist(tmp_path, dequantise=True, random_state=3)
    np.testing.assert_array_equal(X_train, again)


def test_fashion_reads_its_own_default_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("PCA_TO_VAE_DATA", str(tmp_path))
    write_set(tmp_path / "fashion-mnist", n_train=4)
    assert mnist.load_mnist(fashion=True)[0].shape == (4, 784)
    with pytest.raises(FileNotFoundError, match="mnist"):
        mnist.load_mnist()  # MNIST's folder is empty


def test_missing_files_name_the_files_the_folder_and_where_to_get_them(tmp_path):
    write_set(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError) as info:
        mnist.load_mnist(tmp_path)
    message = str(info.value)
    assert "t10k-labels-idx1-ubyte.gz" in message and str(tmp_path) in message
    assert mnist.URLS["mnist"] in message and "train-images" not in message


def test_download_without_a_network_is_a_clear_error_and_leaves_nothing(tmp_path):
    with pytest.raises(FileNotFoundError, match="could not download .*no network"):
        mnist.load_mnist(tmp_path / "cache", download=True)
    assert list((tmp_path / "cache").iterdir()) == []  # no half-written file


def test_download_rejects_a_file_with_the_wrong_checksum(tmp_path, monkeypatch):
    import io

    monkeypatch.setattr("urllib.request.urlopen", lambda url, timeout: io.BytesIO(b"not mnist"))
    with pytest.raises(ValueError, match="MD5"):
        mnist.load_mnist(tmp_path, download=True)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("gz", [True, False])
def test_truncated_file_is_a_clear_error(tmp_path, gz):
    write_set(tmp_path, gz=gz)
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    raw = (tmp_path / name).read_bytes()
    (tmp_path / name).write_bytes(raw[: len(raw) - 100])
    with pytest.raises(ValueError, match=f"cannot read IDX file .*{name}.*"
                                         + ("" if gz else "promises shape")):
        mnist.load_mnist(tmp_path)


def test_files_that_do_not_belong_together(tmp_path):
    write_set(tmp_path)
    with gzip.open(tmp_path / "train-labels-idx1-ubyte.gz", "wb") as handle:
        handle.write(idx_bytes(np.zeros(4)))  # 5 images, 4 labels
    with pytest.raises(ValueError, match="5 images but the labels file holds shape"):
        mnist.load_mnist(tmp_path)
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as handle:
        handle.write(idx_bytes(np.zeros((4, 8, 8))))  # not 28 x 28
    with pytest.raises(ValueError, match=r"\(N, 28, 28\)"):
        mnist.load_mnist(tmp_path)


def test_read_idx_names_the_file(tmp_path):
    (tmp_path / "x-idx1-ubyte").write_bytes(b"\x00\x00\x08")
    with pytest.raises(ValueError, match="x-idx1-ubyte.*IDX header"):
        read_idx(tmp_path / "x-idx1-ubyte")
    with pytest.raises(ValueError, match="does not exist"):
        read_idx(tmp_path / "nothing")
