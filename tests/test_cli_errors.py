"""The CLI's one place for failures: every user-caused error, filesystem errors and running out of
memory included, is one `error:` line and exit status 2; preemption exits 143. Commands are
imported only when they run, so `cifar --help` and `cifar data verify` stay free of torch."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import click.testing
import pytest
from helpers import Result, assert_one_line_error, cifar

from cifar_core.errors import Preempted
from jobs.cli import COMMANDS, _CifarGroup, cli

REPO = Path(__file__).resolve().parents[1]



def run_python(code: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True,
                          timeout=120, **kwargs)


# --- commands load on demand -------------------------------------------------------------------
def test_every_listed_command_resolves_to_the_command_of_that_name():
    ctx = click.Context(cli, info_name="cifar")
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert isinstance(command, click.Command) and command.name == name, name
    assert cli.get_command(ctx, "no-such-command") is None


def test_help_lists_every_command_without_importing_torch():
    probe = run_python("""
        import sys
        from jobs.cli import main
        status = main(["--help"])
        print("IMPORTED:", sorted(m for m in ("torch", "numpy", "ray") if m in sys.modules))
        sys.exit(status)
    """)
    assert probe.returncode == 0, probe.stderr
    assert "IMPORTED: []" in probe.stdout
    listed = probe.stdout.split("Commands:")[1].splitlines()
    assert [line.split()[0] for line in listed if line.startswith("  ")] == list(COMMANDS)


def test_help_of_commands_that_read_declared_settings_imports_no_torch():
    """tune, retrain, pipeline and gan train build their options from the settings' declarations
    (cifar_core.fields), which check seeds without numpy or torch."""
    probe = run_python("""
        import sys
        from jobs.cli import main
        for command in (["tune"], ["retrain"], ["pipeline"], ["gan", "train"], ["gan", "sample"], ["fid"]):
            assert main([*command, "--help"]) == 0, command
            imported = sorted(m for m in ("torch", "numpy") if m in sys.modules)
            assert not imported, (command, imported)
    """)
    assert probe.returncode == 0, probe.stderr


def test_data_verify_does_not_import_torch(tmp_path):
    from cifar_core.data import write_synthetic

    write_synthetic(tmp_path, n_train=20, n_test=10)
    probe = run_python(f"""
        import sys
        from jobs.cli import main
        status = main(["data", "verify", {str(tmp_path)!r}])
        assert status == 0, status
        assert "torch" not in sys.modules, "torch was imported"
    """)
    assert probe.returncode == 0, probe.stderr


# --- filesystem errors: one line from the CLI -------------------------------------------------
def test_an_output_path_under_a_file_is_one_line(tmp_path):
    (tmp_path / "a-file").write_text("not a directory\n")
    assert_one_line_error(cifar("data", "synth", "--out", tmp_path / "a-file" / "data", "--train", 5, "--test", 5),
                          str(tmp_path / "a-file" / "data"), "Not a directory")
    (tmp_path / "results").mkdir()
    assert_one_line_error(cifar("report", "--results-dir", tmp_path / "results", "--out", tmp_path / "a-file" / "r"),
                          str(tmp_path / "a-file" / "r"), "Not a directory")


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0


needs_mount_namespace = pytest.mark.skipif(not _unshare_works(), reason="needs `unshare -rm` (user+mount namespaces)")


def _in_mount_namespace(setup: str, argv: list[str], after: str = "true") -> subprocess.CompletedProcess:
    """Run `cifar ARGV` in a private mount namespace between the shell commands `setup` and `after`
    (as the namespace's root); the exit status is the command's."""
    command = " ".join([sys.executable, "-m", "jobs.cli", *argv])
    script = f"{setup} && {{ {command}; status=$?; {after}; exit $status; }}"
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)


@needs_mount_namespace
def test_a_read_only_volume_is_one_line(tmp_path):
    volume = tmp_path / "volume"
    volume.mkdir()
    done = _in_mount_namespace(f"mount --bind {volume} {volume} && mount -o remount,bind,ro {volume}",
                               ["data", "synth", "--out", str(volume / "data"), "--train", "5", "--test", "5"])
    assert_one_line_error(Result.of(done), str(volume / "data"), "Read-only file system")


@needs_mount_namespace
def test_a_full_volume_is_one_line(tmp_path):
    volume = tmp_path / "volume"
    volume.mkdir()
    done = _in_mount_namespace(f"mount -t tmpfs -o size=64k tmpfs {volume}",
                               ["data", "synth", "--out", str(volume / "data"), "--train", "500", "--test", "5"],
                               after=f"ls -A {volume / 'data' / 'cifar-100-python'}")
    # ENOSPC comes from a write or fsync, without a file name: cifar_core.atomic names the target.
    assert_one_line_error(Result.of(done), str(volume / "data" / "cifar-100-python"),
                          "No space left on device")
    assert done.stdout.split() == []  # the torn temporary file was removed, nothing half-written stays


@needs_mount_namespace
def test_evaluate_on_a_full_volume_prints_the_scores_and_why_they_were_not_recorded(tmp_path, synth_root):
    status, _, err = cifar("train", "--model", "tinycnn", "--epochs", 1, "--batch-size", 100, "--augment", "none",
                           "--device", "cpu", "--data-dir", synth_root, "--results-dir", tmp_path, "--run-name", "r")
    assert status == 0, err
    volume = tmp_path / "volume"
    volume.mkdir()
    # The run on a volume with no space left: its lock file exists, summary.json cannot be rewritten.
    done = _in_mount_namespace(f"mount -t tmpfs -o size=1m tmpfs {volume} && cp -a {tmp_path / 'train' / 'r'} {volume} "
                               f"&& {{ dd if=/dev/zero of={volume / 'fill'} bs=4k 2>/dev/null; true; }}",
                               ["evaluate", "--checkpoint", str(volume / "r" / "last.pt"), "--data-dir", str(synth_root),
                                "--device", "cpu"])
    assert done.returncode == 0, done.stderr
    assert "top-1 " in done.stdout
    assert f"not recorded: cannot write {volume / 'r' / 'summary.json'} (No space left on device)" in done.stdout


# --- running out of memory ---------------------------------------------------------------------
def test_running_out_of_memory_is_one_line(tmp_path):
    """A real allocation failure: the address space is capped just above what the imports use."""
    probe = run_python(f"""
        import resource, sys
        import cifar_core.data.synth  # imported before the cap, so the cap only bites on the data
        from jobs.cli import main

        size_kb = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0])
        limit = size_kb * 1024 + 300 * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        sys.exit(main(["data", "synth", "--out", {str(tmp_path / "data")!r}, "--train", "200000", "--test", "1"]))
    """)
    assert_one_line_error(Result.of(probe), "not enough memory for `cifar data synth`")


# --- preemption is not an error ------------------------------------------------------------------
def _group_with(command: click.Command) -> _CifarGroup:
    group = _CifarGroup(name="cifar")
    group.add_command(command)
    return group


def test_preemption_exits_143_with_one_line():
    @click.command("work")
    def work() -> None:
        raise Preempted("stopped at step 7 of RESULTS/train/r; run the same command to resume")

    result = click.testing.CliRunner().invoke(_group_with(work), ["work"])
    assert result.exit_code == 143
    assert result.output.strip().splitlines() == ["preempted: stopped at step 7 of RESULTS/train/r; run the same command to resume"]


def test_memory_error_names_the_command():
    @click.group("outer")
    def outer() -> None:
        pass

    @outer.command("inner")
    def inner() -> None:
        raise MemoryError()

    result = click.testing.CliRunner().invoke(_group_with(outer), ["outer", "inner"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: not enough memory for `cifar outer inner`"
