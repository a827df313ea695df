"""lgm.data.load_data_file on small npz, npy, csv and IDX files written here (IDX bytes built by
hand from the format's definition, independently of the reader)."""
import gzip
import struct

import numpy as np
import pytest

from lgm.data import load_data_file


def idx_bytes(array, code=0x08):
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype({0x08: ">u1", 0x0D: ">f4"}[code]).tobytes()


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, size=(7, 4, 3)).astype(np.uint8)


def test_npz_first_array_or_named_key(tmp_path):
    a, b = np.arange(12.0).reshape(4, 3), np.ones((2, 5))
    np.savez(tmp_path / "d.npz", first=a, second=b)
    np.testing.assert_array_equal(load_data_file(tmp_path / "d.npz"), a)
    np.testing.assert_array_equal(load_data_file(tmp_path / "d.npz", key="second"), b)
    with pytest.raises(ValueError, match="no array 'third'"):
        load_data_file(tmp_path / "d.npz", key="third")


def test_npy_images_are_flattened(tmp_path, images):
    np.save(tmp_path / "d.npy", images)
    X = load_data_file(tmp_path / "d.npy")
    assert X.shape == (7, 12) and X.dtype == np.float64
    np.testing.assert_array_equal(X, images.reshape(7, 12))


def test_csv_with_and_without_header(tmp_path):
    (tmp_path / "h.csv").write_text("a,b,c\n1,2,3\n4.5,-5,6e-1\n")
    (tmp_path / "n.csv").write_text("1,2,3\n4.5,-5,6e-1\n\n")
    expected = np.array([[1, 2, 3], [4.5, -5, 0.6]])
    np.testing.assert_array_equal(load_data_file(tmp_path / "h.csv"), expected)
    np.testing.assert_array_equal(load_data_file(tmp_path / "n.csv"), expected)
    (tmp_path / "one.csv").write_text("x\n1\n2\n")
    assert load_data_file(tmp_path / "one.csv").shape == (2, 1)


@pytest.mark.parametrize("name, opener", [("train-images-idx3-ubyte", open),
                                          ("train-images-idx3-ubyte.gz", gzip.open)])
def test_idx_plain_and_gzipped(tmp_path, images, name, opener):
    with opener(tmp_path / name, "wb") as handle:
        handle.write(idx_bytes(images))
    np.testing.assert_array_equal(load_data_file(tmp_path / name), images.reshape(7, 12))


def test_idx_float_labels_file(tmp_path):
    values = np.array([0.5, -1.25, 3.0])
    (tmp_path / "v-idx1-float").write_bytes(idx_bytes(values, code=0x0D))
    np.testing.assert_array_equal(load_data_file(tmp_path / "v-idx1-float"), values[:, None])


@pytest.mark.parametrize("name, content, match", [
    ("missing.csv", None, "does not exist"),
    ("bad.csv", "1,2\n3,oops\n", "line 2 is not"),
    ("ragged.csv", "1,2\n3\n", "same number"),
    ("empty.csv", "", "empty"),
    ("nan.csv", "1,nan\n2,3\n", "NaN"),
    ("data.txt", "1 2\n", "unknown format"),
    ("x-idx3-ubyte", b"\x00\x00\x08\x02" + struct.pack(">2I", 3, 3) + b"\x01\x02", "header promises"),
    ("y-idx3-ubyte", b"PK\x03\x04junk", "IDX header"),
    ("z.npz", b"not a zip", "cannot read"),
    ("z.gz-idx-ubyte.gz", b"not gzip", "cannot read"),
])
def test_bad_files_give_one_clear_line(tmp_path, name, content, match):
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=match) as info:
        load_data_file(path)
    assert "\n" not in str(info.value) and name in str(info.value)
