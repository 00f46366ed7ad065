"""The `w2v` process ends without tearing Python down object by object (cli.exit_now), yet
keeps what a normal exit guarantees: the exit status, flushed output, atexit handlers, and
waiting for a non-daemon thread that is still at work."""

import subprocess
import sys
import textwrap

import pytest

from w2v_cli import cli


def run_main(tmp_path, argv: list[str], prelude: str = "") -> subprocess.CompletedProcess:
    """`w2v argv...` through cli.main in a fresh interpreter, after `prelude`."""
    script = tmp_path / "run_w2v.py"
    script.write_text(textwrap.dedent(prelude) + f"\nimport sys\nsys.argv = ['w2v', *{argv!r}]\n"
                      "from w2v_cli.cli import main\nmain()\n")
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)


def test_output_and_status_survive_the_fast_exit(tmp_path):
    shown = run_main(tmp_path, ["config", "show"])
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == cli.load_config(None, (), {}).to_yaml()  # the whole YAML, flushed

    bad = run_main(tmp_path, ["transcribe", "--no-such-flag"])
    assert bad.returncode == 2  # click's usage error status, kept
    assert "No such option" in bad.stderr


def test_atexit_handlers_run_and_teardown_is_skipped(tmp_path):
    prelude = """
        import atexit
        atexit.register(lambda: print("atexit ran", flush=True))

        class Noisy:
            def __del__(self):
                print("torn down", flush=True)

        noisy = Noisy()  # a normal exit finalizes module globals and prints this
    """
    done = run_main(tmp_path, ["config", "show"], prelude)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("atexit ran")
    assert "torn down" not in done.stdout  # the fast exit was taken


def test_a_running_non_daemon_thread_gets_the_normal_exit(tmp_path):
    marker = tmp_path / "written-by-thread"
    prelude = f"""
        import threading, time
        from pathlib import Path

        def late_write():
            time.sleep(0.5)
            Path({str(marker)!r}).write_text("done")

        threading.Thread(target=late_write).start()
    """
    done = run_main(tmp_path, ["config", "show"], prelude)
    assert done.returncode == 0, done.stderr
    assert marker.read_text() == "done"  # a normal exit waits for the thread


class Exited(Exception):
    pass


@pytest.fixture
def no_real_exit(monkeypatch):
    """exit_now in this process, with os._exit recording the status instead of exiting."""
    def fake_exit(status):
        raise Exited(status)

    monkeypatch.setattr(cli.os, "_exit", fake_exit)
    monkeypatch.setattr("atexit._run_exitfuncs", lambda: None)


def exit_status(code) -> int:
    with pytest.raises(Exited) as e:
        cli.exit_now(code)
    return e.value.args[0]


def test_exit_status_follows_sys_exit(no_real_exit, capsys):
    assert exit_status(None) == 0
    assert exit_status(0) == 0
    assert exit_status(3) == 3
    assert exit_status("bad things") == 1
    assert "bad things" in capsys.readouterr().err


def test_a_failed_stdout_flush_gives_status_120(no_real_exit, monkeypatch):
    class ClosedPipe:
        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert exit_status(0) == 120
    assert exit_status(4) == 4  # an error status is kept
