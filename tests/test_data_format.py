"""The official CIFAR-100 python format: our writer, our reader and torchvision's reader agree."""

from __future__ import annotations

import hashlib
import pickle
import shutil

import numpy as np
import pytest

from cifar_core.data import format as fmt
from cifar_core.data import (
    is_synthetic,
    load_meta,
    load_split,
    official_meta,
    torchvision_cifar100,
    write_synthetic,
)
from cifar_core.data.py2pickle import dumps_py2
from cifar_core.errors import DataError


def raw(path, encoding):
    with open(path, "rb") as f:
        return pickle.load(f, encoding=encoding)


@pytest.mark.parametrize("encoding", ["latin1", "bytes"])
def test_synthetic_files_have_the_official_keys_types_and_layout(synth_root, encoding):
    text = (lambda s: s.encode("latin1")) if encoding == "bytes" else (lambda s: s)
    entry = raw(synth_root / "cifar-100-python" / "train", encoding)
    # Python 2 strings: bytes under encoding="bytes", str under "latin1", like the real files.
    assert list(entry) == [text(k) for k in fmt.BATCH_KEYS]
    data = entry[text("data")]
    assert data.dtype == np.uint8 and data.shape == (2000, 3072)
    assert isinstance(entry[text("batch_label")], type(text("")))
    assert isinstance(entry[text("filenames")][0], type(text("")))
    assert all(type(v) is int for v in entry[text("fine_labels")][:50])
    assert all(type(v) is int for v in entry[text("coarse_labels")][:50])
    meta = raw(synth_root / "cifar-100-python" / "meta", encoding)
    assert list(meta) == [text("fine_label_names"), text("coarse_label_names")]
    assert meta[text("fine_label_names")][0] == text("apple")


def test_reader_gives_the_same_data_under_both_encodings(synth_root):
    a = load_split(synth_root, "train", encoding="latin1")
    b = load_split(synth_root, "train", encoding="bytes")
    assert a.images.dtype == np.uint8 and a.images.shape == (2000, 32, 32, 3)
    assert a.fine_labels.dtype == np.int64 and a.coarse_labels.dtype == np.int64
    assert np.array_equal(a.images, b.images) and np.array_equal(a.fine_labels, b.fine_labels)
    assert a.filenames == b.filenames and a.batch_label == b.batch_label
    assert (
        load_meta(synth_root, encoding="latin1") == load_meta(synth_root, encoding="bytes") == official_meta()
    )
    assert len(load_split(synth_root / "cifar-100-python", "test")) == 500  # the folder itself works too


def test_rows_are_planar_rgb(synth_root):
    entry = raw(synth_root / "cifar-100-python" / "test", "latin1")
    split = load_split(synth_root, "test")
    row = entry["data"][7]
    assert np.array_equal(split.images[7, :, :, 0].ravel(), row[:1024])  # R plane first
    assert np.array_equal(split.images[7, :, :, 2].ravel(), row[2048:])  # B plane last


@pytest.mark.parametrize("train", [True, False])
def test_torchvision_reader_reads_the_synthetic_set(synth_root, train):
    ours = load_split(synth_root, "train" if train else "test")
    theirs = torchvision_cifar100(synth_root, train=train)
    assert np.array_equal(theirs.data, ours.images)
    assert theirs.targets == ours.fine_labels.tolist()
    assert theirs.classes == official_meta().fine_label_names
    image, label = theirs[0]
    assert image.size == (32, 32) and label == ours.fine_labels[0]


def test_plain_torchvision_rejects_synthetic_train_and_test_by_md5_only(synth_root):
    # torchvision checks the official md5s. Our meta matches them; train/test cannot.
    from torchvision.datasets import CIFAR100

    assert fmt.md5_of(synth_root / "cifar-100-python" / "meta") == fmt.OFFICIAL_MD5["meta"]
    with pytest.raises(RuntimeError, match="not found or corrupted"):
        CIFAR100(str(synth_root), train=True, download=False)


def test_meta_from_shipped_names_is_the_official_file():
    assert hashlib.md5(fmt.meta_bytes(official_meta())).hexdigest() == fmt.OFFICIAL_MD5["meta"]


def test_meta_round_trip_reproduces_the_real_file_byte_for_byte(shared_dir, tmp_path):
    real = shared_dir / "cifar100" / "meta"
    if not real.is_file():
        pytest.skip("no real meta file in shared/")
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    shutil.copy(real, folder / "meta")
    meta = load_meta(tmp_path)
    assert meta == official_meta()  # the shipped names are the real ones
    assert fmt.meta_bytes(meta) == real.read_bytes()


def test_py2_pickle_round_trips_every_supported_value():
    value = {
        "ints": [0, 255, 256, 65535, 65536, -1, -(2**31)],
        "many": list(range(2500)),
        "none": None,
        "flags": (True, False),
        "nested": {"t": (1, "ab", b"c"), "l": ["x"]},
        "a": np.arange(6, dtype=np.uint8),
    }
    back = pickle.loads(dumps_py2(value), encoding="latin1")
    assert back["ints"] == value["ints"] and back["many"] == value["many"] and back["none"] is None
    assert back["flags"] == (True, False) and back["nested"] == {"t": (1, "ab", "c"), "l": ["x"]}
    assert np.array_equal(back["a"], value["a"])


def test_batch_files_use_only_what_python2_cpickle_wrote():
    import pickletools

    rows = np.arange(4 * fmt.ROW_BYTES, dtype=np.int64).astype(np.uint8).reshape(4, -1)
    data = fmt.batch_bytes(rows, np.array([0, 1, 2, 300]), np.array([4, 1, 14, 9]), ["a.png", "bb.png", "c", "d"],
                           "training batch 1 of 1")
    ops = list(pickletools.genops(data))
    # Byte strings only (Python 3's BINUNICODE or _codecs.encode would load as str under encoding="bytes").
    assert {op.name for op, _, _ in ops} <= {
        "PROTO", "EMPTY_DICT", "EMPTY_LIST", "BINPUT", "MARK", "SHORT_BINSTRING", "BINSTRING", "BININT1", "BININT2",
        "BININT", "APPEND", "APPENDS", "SETITEMS", "GLOBAL", "TUPLE1", "TUPLE2", "TUPLE3", "TUPLE", "REDUCE", "BUILD",
        "NEWFALSE", "NONE", "STOP"}
    # numpy of that era: the module path Python 2 readers import, and dtype('u1', 0, 1) with ints.
    assert [arg for op, arg, _ in ops if op.name == "GLOBAL"] == [
        "numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"]
    # Memo entries numbered from 1; one-character strings ("c", "d", the "b" of the reduce) get none.
    assert [arg for op, arg, _ in ops if op.name == "BINPUT"] == list(range(1, sum(op.name == "BINPUT" for op, _, _ in ops) + 1))
    strings = [(arg, ops[i + 1][0].name == "BINPUT") for i, (op, arg, _) in enumerate(ops)
               if op.name in ("SHORT_BINSTRING", "BINSTRING")]
    assert ("c", False) in strings and ("b", False) in strings and ("bb.png", True) in strings
    assert all(memoized == (len(arg) >= 2) for arg, memoized in strings)
    back = pickle.loads(data, encoding="bytes")
    assert back[b"filenames"] == [b"a.png", b"bb.png", b"c", b"d"] and np.array_equal(back[b"data"], rows)


def test_synthetic_labels_are_balanced_and_coarse_matches_fine(synth_root):
    split = load_split(synth_root, "train")
    assert np.bincount(split.fine_labels, minlength=100).tolist() == [20] * 100
    assert np.array_equal(split.coarse_labels, fmt.fine_to_coarse()[split.fine_labels])
    assert split.batch_label.startswith("synthetic")


def test_write_synthetic_is_deterministic_by_seed(tmp_path):
    a, b, c = (
        write_synthetic(tmp_path / name, 150, 30, seed=seed) for name, seed in (("a", 3), ("b", 3), ("c", 4))
    )
    for name in ("train", "test", "meta"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "train").read_bytes() != (c / "train").read_bytes()
    # The test set does not depend on the size of the training set.
    d = write_synthetic(tmp_path / "d", 300, 30, seed=3)
    assert (d / "test").read_bytes() == (a / "test").read_bytes()


def test_is_synthetic_from_manifest_or_batch_label(synth_root, tmp_path):
    assert is_synthetic(synth_root)
    copy = tmp_path / "copy" / "cifar-100-python"
    shutil.copytree(synth_root / "cifar-100-python", copy)
    (copy / fmt.MANIFEST_NAME).unlink()
    assert is_synthetic(copy)  # the batch label still says so
    split = load_split(copy, "train")
    rows = split.images.transpose(0, 3, 1, 2).reshape(len(split), -1)
    label = fmt.OFFICIAL_BATCH_LABELS["train"]
    (copy / "train").write_bytes(
        fmt.batch_bytes(rows, split.fine_labels, split.coarse_labels, split.filenames, label)
    )
    assert not is_synthetic(copy)


def test_write_synthetic_never_overwrites_real_data(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rows = np.zeros((2, fmt.ROW_BYTES), np.uint8)
    real = fmt.batch_bytes(rows, np.array([0, 1]), np.array([4, 1]), ["a.png", "b.png"], "training batch 1 of 1")
    fmt.write_file(folder / "train", real)
    with pytest.raises(DataError, match="already holds train not written by `cifar data synth`"):
        write_synthetic(tmp_path, 10, 10)
    assert (folder / "train").read_bytes() == real


def test_an_interrupted_synth_can_be_redone(synth_root, tmp_path):
    folder = tmp_path / "cifar-100-python"
    shutil.copytree(synth_root / "cifar-100-python", folder)
    (folder / fmt.MANIFEST_NAME).unlink()  # killed before the manifest, the last file, was written
    (folder / "meta").unlink()
    write_synthetic(tmp_path, 10, 10)
    assert is_synthetic(tmp_path) and len(load_split(tmp_path, "train").fine_labels) == 10


def test_unpickler_refuses_anything_but_arrays(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": shutil.rmtree}))
    with pytest.raises(DataError, match=r"meta is truncated or corrupt \(unexpected object shutil.rmtree\)"):
        load_meta(tmp_path)


def test_missing_folder_says_how_to_get_data(tmp_path):
    with pytest.raises(DataError, match="cifar data synth"):
        load_split(tmp_path, "train")


def test_every_exported_name_resolves_on_first_use():
    import cifar_core.data as data

    for name in data.__all__:
        assert getattr(data, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        data.nope  # noqa: B018
