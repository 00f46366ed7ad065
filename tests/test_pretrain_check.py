import json

from click.testing import CliRunner

from w2v_cli.cli import cli


def test_random_model_fails_the_check(tiny_pretraining):
    result = CliRunner().invoke(cli, ["pretrain-check", "--model", str(tiny_pretraining), "--json"])
    assert result.exit_code == 1, result.output
    record = json.loads(result.stdout)
    assert record["passed"] is False and record["cosine_masked"] < 0.5
    for key in ("cosine_unmasked", "cosine_shuffled", "contrastive_loss", "diversity_loss",
                "codevector_perplexity", "masked_frames", "frames"):
        assert record[key] is not None
    assert record["contrastive_loss"] > 0 and 0 < record["masked_frames"] < record["frames"]


def test_threshold_gates_exit_status_and_seed_repeats(tiny_pretraining, speech_dir):
    audio = speech_dir / "audio" / "1089-134686-0000.flac"
    args = ["pretrain-check", "-m", str(tiny_pretraining), "--audio", str(audio), "--threshold", "-1",
            "--mask-prob", "0.3", "--mask-length", "3", "--seed", "7"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0 and "PASS" in first.stdout
    second = CliRunner().invoke(cli, args)
    assert first.stdout == second.stdout


def test_help_and_bad_audio(tiny_pretraining, tmp_path):
    assert CliRunner().invoke(cli, ["pretrain-check", "--help"]).exit_code == 0
    (tmp_path / "x.wav").write_bytes(b"")
    result = CliRunner().invoke(cli, ["pretrain-check", "-m", str(tiny_pretraining), "--audio", str(tmp_path / "x.wav")])
    assert result.exit_code == 1 and "x.wav: file is empty" in result.output
