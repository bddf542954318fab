"""Every name that becomes a directory under RESULTS/ goes through cifar_core.names.check_name: one
plain name (letters, digits, '.', '_', '-'; not starting with '.'), never a path or a space."""

from __future__ import annotations

import pytest
from helpers import assert_one_line_error, cifar


@pytest.mark.parametrize("name", ["a b", ".x", "..", "../up", "a/b", ""])
def test_gan_run_names_are_plain(tmp_path, name):
    result = cifar("gan", "train", "--run-name", name, "--steps", "1", "--data-dir", tmp_path / "data",
                   "--results-dir", tmp_path / "results", "--device", "cpu")
    assert_one_line_error(result, f"error: --run-name {name!r}: use letters, digits, '.', '_' and '-' (no paths)")
    assert not (tmp_path / "results").exists()
