"""One rule for the synthetic stand-in: every command whose numbers the report sets beside a published
one refuses data that is not the official CIFAR-100, and only --allow-synthetic runs it anyway."""

from __future__ import annotations

import pytest
from helpers import assert_one_line_error, cifar

from cifar_core.errors import ConfigError
from cifar_core.pipeline import resolve_profile


def test_a_search_refuses_the_stand_in_before_anything_runs(tmp_path, synth_root):
    result = cifar("tune", "--experiment", "s", "--data-dir", synth_root, "--results-dir", tmp_path)
    assert_one_line_error(result, "`cifar tune` sets its results beside the reports' numbers",
                          "a SYNTHETIC stand-in", "--allow-synthetic")
    assert not (tmp_path / "tune").exists()


def test_allow_synthetic_lets_a_search_past_the_data_check(tmp_path, synth_root):
    # The next check (--device cuda without a GPU share) is refused before Ray starts: the data passed.
    result = cifar("tune", "--experiment", "s", "--allow-synthetic", "--device", "cuda", "--gpus-per-trial", "0",
                   "--data-dir", synth_root, "--results-dir", tmp_path)
    assert_one_line_error(result, "--device cuda needs a GPU share")


def test_no_setting_turns_the_full_profiles_refusal_off(tmp_path, synth_root):
    result = cifar("pipeline", "--profile", "full", "--set", "data.official_only=false", "--data-dir", synth_root,
                   "--results-dir", tmp_path / "results")
    assert_one_line_error(result, "--set data.official_only=false", "pass --allow-synthetic instead")
    assert not (tmp_path / "results").exists()
    for spelled in ("false", "no", "False"):
        with pytest.raises(ConfigError, match="only --allow-synthetic runs it anyway"):
            resolve_profile("full", [f"data.official_only={spelled}"])


def test_allow_synthetic_is_the_switch_and_the_smoke_profile_keeps_its_own():
    assert resolve_profile("full", ["data.official_only=false"], allow_synthetic=True).data.official_only is False
    assert resolve_profile("full", allow_synthetic=True).data.official_only is False
    assert resolve_profile("full").data.official_only is True
    # smoke runs on the stand-in as it always did (labelled SYNTHETIC); turning the refusal on is allowed.
    assert resolve_profile("smoke").data.official_only is False
    assert resolve_profile("smoke", ["data.official_only=true"]).data.official_only is True
