from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from w2v_cli.cli import cli
from w2v_cli.config import Config, load_config
from w2v_cli.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_default_yaml_lists_every_key_with_its_default():
    data = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    assert data == Config().to_dict()


def test_precedence_defaults_file_set_flags(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("inference:\n  batch_size: 2\n  chunk_s: 10\ntrain:\n  learning_rate: 3e-4\n")
    config = load_config(path, ["inference.batch_size=5", "inference.stride_s=1"],
                         {"inference.stride_s": 2.5, "inference.dtype": None})
    assert config.inference.batch_size == 5  # --set beats the file
    assert config.inference.chunk_s == 10.0 and isinstance(config.inference.chunk_s, float)
    assert config.inference.stride_s == 2.5  # a flag beats --set
    assert config.inference.dtype == "auto"  # a flag not given changes nothing
    assert config.train.learning_rate == 3e-4


def test_unknown_key_names_key_file_line_and_closest(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  name: x\ninference:\n  batchsize: 2\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert str(path) in msg and "line 4" in msg
    assert "'inference.batchsize'" in msg and "did you mean 'inference.batch_size'" in msg


def test_unknown_section_and_wrong_type(tmp_path):
    with pytest.raises(ConfigError, match="unknown section 'infrence'.*did you mean 'inference'"):
        load_config(overrides=["infrence.batch_size=2"])
    with pytest.raises(ConfigError, match=r"'train.max_steps' expects int, got str 'many'"):
        load_config(overrides=["train.max_steps=many"])
    with pytest.raises(ConfigError, match="must be one of"):
        load_config(overrides=["inference.dtype=fp8"])
    with pytest.raises(ConfigError, match="expects bool"):
        load_config(overrides=["train.freeze_feature_encoder=3"])


def test_base_config_is_applied_first_and_overridden_key_by_key(tmp_path):
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "root.yaml").write_text("train:\n  seed: 7\n  max_steps: 10\n")
    (tmp_path / "shared" / "base.yaml").write_text(
        "base: root.yaml\ntrain:\n  learning_rate: 1e-3\n  warmup_steps: 300\n  max_steps: 20\n")
    path = tmp_path / "run.yaml"  # its base's path is relative to this file's folder
    path.write_text("base: shared/base.yaml\ntrain:\n  learning_rate: 3e-3\n")
    config = load_config(path, ["train.warmup_steps=500"])
    assert config.train.learning_rate == 3e-3  # the file beats its base
    assert config.train.max_steps == 20  # a base beats its own base
    assert config.train.seed == 7  # what no later file sets comes through
    assert config.train.warmup_steps == 500  # --set beats all files
    assert "base" not in config.to_dict()
    (tmp_path / "shared" / "root.yaml").write_text("train:\n  sead: 7\n")
    with pytest.raises(ConfigError, match=r"root.yaml, line 2: unknown key 'train.sead'"):
        load_config(path)  # a base's mistakes are named in the base


@pytest.mark.parametrize("text, error", [
    ("model:\n  name: x\nbase: missing.yaml\n", r"run.yaml, line 3: base config .*missing.yaml not found"),
    ("base: [a.yaml]\n", "'base' must be the path of another config file"),
    ("base: a.yaml\n", r"in a loop .*run.yaml -> .*a.yaml -> .*run.yaml"),  # a.yaml names run.yaml
    ("bases: a.yaml\n", "unknown section 'bases'; did you mean 'base'"),
])
def test_base_config_errors_name_the_file_and_the_fix(tmp_path, text, error):
    (tmp_path / "a.yaml").write_text("base: run.yaml\n")
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=error):
        load_config(path)


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  learning_rate: [1, 2\n  seed: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml, line \d+.*malformed YAML"):
        load_config(path)


def test_yaml_is_read_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("model: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_config(path)


def test_config_show_cli(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["config", "show", "--set", "inference.batch_size=7"])
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.stdout)
    assert shown["inference"]["batch_size"] == 7
    assert shown["model"]["name"] == "facebook/wav2vec2-base-960h"
    result = runner.invoke(cli, ["config", "show", "--set", "inference.bogus=1"])
    assert result.exit_code == 1 and "unknown key 'inference.bogus'" in result.output
    result = runner.invoke(cli, ["config", "show", "--config", str(tmp_path / "missing.yaml")])
    assert result.exit_code != 0 and "missing.yaml" in result.output
    assert runner.invoke(cli, ["config", "show", "--help"]).exit_code == 0


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "configs").glob("*.yaml")))
def test_every_shipped_config_loads(name):
    config = load_config(ROOT / "configs" / name)
    assert config.train.output_dir


def test_nfd_turns_korean_syllables_into_jamo():
    from w2v_cli.config import TextConfig
    from w2v_cli.finetune import build_vocab
    from w2v_cli.text import normalize_text

    text = normalize_text("한국어 음성 인식!", TextConfig(case="keep", unicode_form="NFD", keep_chars=""))
    vocab = build_vocab([text])
    assert "한" not in vocab and "\u1112" in vocab and "\u1161" in vocab  # ㅎ and ㅏ as jamo
    assert normalize_text(text, TextConfig(case="keep", unicode_form="NFC")) == "한국어 음성 인식"
