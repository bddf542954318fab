"""Every name that becomes a directory under RESULTS/ goes through cifar_core.names.check_name: one
plain name (letters, digits, '.', '_', '-'; not starting with '.'), never a path or a space."""

from __future__ import annotations

import pytest

from jobs.cli import main


@pytest.mark.parametrize("name", ["a b", ".x", "..", "../up", "a/b", ""])
def test_gan_run_names_are_plain(capsys, tmp_path, name):
    capsys.readouterr()
    status = main(["gan", "train", "--run-name", name, "--steps", "1", "--data-dir", str(tmp_path / "data"),
                   "--results-dir", str(tmp_path / "results"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert status == 2 and err.strip().splitlines() == [f"error: --run-name {name!r}: use letters, digits, '.', '_' "
                                                        "and '-' (no paths)"], err
    assert not (tmp_path / "results").exists()
