"""w2v pretrain, and the demo recipe in miniature: pretrain -> pretrain-check -> finetune -> eval."""

import json

import pytest
from click.testing import CliRunner

from w2v_cli.cli import cli
from w2v_cli.config import load_config
from w2v_cli.pretrain import gumbel_temperature

FOUR = ["1988-24833-0000", "2412-153948-0002", "3752-4944-0000", "3752-4944-0001"]


@pytest.fixture()
def manifest(tmp_path, speech_manifest):
    return speech_manifest(tmp_path / "four.tsv", FOUR)


def test_recipe_in_miniature(tmp_path, manifest):
    from w2v_cli.testing import TINY_ARCHITECTURE

    arch = json.dumps(TINY_ARCHITECTURE)
    runner = CliRunner()
    common = ["--set", f"data.train={manifest}", "--set", "train.batch_size=2", "--set", "train.log_every=1",
              "--set", "train.warmup_steps=1", "--set", "train.save_every=0", "--set", "train.eval_every=0", "-q"]
    pre = tmp_path / "pre"
    result = runner.invoke(cli, ["pretrain", "--set", "model.name=", "--set", f"model.architecture={arch}",
                                 "-o", str(pre), "--max-steps", "4", "--set", "pretrain.num_negatives=10",
                                 "--set", "pretrain.mask_time_length=4", *common])
    assert result.exit_code == 0, result.output
    logs = [json.loads(line) for line in (pre / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logs] == [1, 2, 3, 4]
    for key in ("contrastive", "diversity", "perplexity", "masked_share", "temperature", "grad_norm"):
        assert key in logs[0]
    assert 0.2 < logs[0]["masked_share"] < 0.9
    check = runner.invoke(cli, ["pretrain-check", "--model", str(pre), "--json"])
    assert check.exit_code in (0, 1) and json.loads(check.stdout)["frames"] > 0  # loads and runs
    fine = tmp_path / "fine"
    result = runner.invoke(cli, ["finetune", "--model", str(pre), "-o", str(fine), "--max-steps", "2",
                                 "--set", "train.freeze_feature_encoder=true", *common])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["eval", "--model", str(fine), "--dataset", str(manifest), "-q"])
    assert result.exit_code == 0, result.output
    assert "WER" in result.stdout


def test_gumbel_temperature_decays_to_its_floor():
    config = load_config(None, ["pretrain.gumbel_temp_decay=0.99"])
    assert gumbel_temperature(0, config) == 2.0
    assert 0.5 < gumbel_temperature(100, config) < 2.0
    assert gumbel_temperature(10_000, config) == 0.5


def test_pretrain_needs_data_and_a_model(tmp_path):
    result = CliRunner().invoke(cli, ["pretrain", "-o", str(tmp_path)])
    assert result.exit_code == 1 and "data.train is not set" in result.output
    assert "contrastive" in CliRunner().invoke(cli, ["pretrain", "--help"]).output
