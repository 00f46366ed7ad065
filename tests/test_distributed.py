"""`w2v transcribe` under torchrun: inputs sharded over processes, the output of one."""

import os
import subprocess
import sys

import pytest
import soundfile as sf
from click.testing import CliRunner

from w2v_cli.cli import cli
from w2v_cli.distributed import Shard, current_shard, in_input_order
from w2v_cli.errors import W2VError
from w2v_cli.testing import synth_speechlike


def test_shard_from_the_launcher_environment(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR"):
        monkeypatch.delenv(name, raising=False)
    assert current_shard() == Shard(0, 1, 0, 1)
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(W2VError, match="MASTER_ADDR is not set.*torchrun"):
        current_shard()
    monkeypatch.setenv("MASTER_ADDR", "localhost")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    shard = current_shard()
    assert shard == Shard(2, 3, 0, 1) and not shard.is_main
    assert shard.indices(8) == [2, 5] and shard.device("cpu") == "cpu"
    monkeypatch.setenv("RANK", "3")
    with pytest.raises(W2VError, match="RANK=3 and WORLD_SIZE=3"):
        current_shard()
    assert list(in_input_order(Shard(), iter("abc"), 3)) == ["a", "b", "c"]


@pytest.fixture()
def inputs(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for i, seconds in enumerate((1.0, 2.5, 0.8, 3.1, 1.7)):
        sf.write(folder / f"c{i}.wav", synth_speechlike(seconds, seed=i), 16000)
    sf.write(folder / "sub" / "c1.wav", synth_speechlike(1.2, seed=9), 16000)  # a repeated stem
    (folder / "broken.wav").write_text("not audio")
    return folder


def test_torchrun_two_processes_give_the_output_of_one(tiny_ctc, inputs, tmp_path):
    single = CliRunner().invoke(cli, ["transcribe", str(inputs), "--model", str(tiny_ctc),
                                      "-o", str(tmp_path / "one"), "-f", "json", "-q"])
    assert single.exit_code == 1 and "1 of 7 inputs failed" in single.stderr
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "w2v_cli.cli", "transcribe", str(inputs), "--model", str(tiny_ctc),
           "-o", str(tmp_path / "two"), "-f", "json", "-q"]
    two = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert two.returncode == 1, two.stderr[-2000:]  # the broken input, as with one process
    assert two.stdout == single.stdout  # every result, in input order, printed once (rank 0)
    assert two.stderr.count("not a readable audio file") == 1
    assert two.stderr.count("1 of 7 inputs failed") == 1
    one_files = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == one_files
    assert "c1-2.json" in one_files  # names are unique over all inputs, not per process
    for name in one_files:
        if name.endswith(".json") and not name.startswith("."):
            assert (tmp_path / "two" / name).read_text() == (tmp_path / "one" / name).read_text()
