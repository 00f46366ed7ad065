import json
import time

import pytest
import torch

from w2v_cli.errors import ModelNotAvailableError
from w2v_cli.models import load_ctc_model, load_pretraining_model


def test_local_folder_loads(tiny_ctc):
    loaded = load_ctc_model(str(tiny_ctc), device="cpu")
    assert loaded.sample_rate == 16000 and not loaded.model.training
    assert loaded.processor.tokenizer.pad_token_id == 0


def test_old_checkpoint_layout_with_weight_norm_names_loads(tiny_ctc, tmp_path):
    """pytorch_model.bin with 2021's weight_g/weight_v names loads to the same weights."""
    import shutil

    from safetensors.torch import load_file

    state = load_file(tiny_ctc / "model.safetensors")
    old = {}
    for key, value in state.items():
        key = key.replace("parametrizations.weight.original0", "weight_g")
        key = key.replace("parametrizations.weight.original1", "weight_v")
        old[key] = value
    assert any("weight_g" in k for k in old)
    for name in ("config.json", "vocab.json", "tokenizer_config.json"):
        shutil.copy(tiny_ctc / name, tmp_path / name)
    # 2021 layout: the feature extractor in preprocessor_config.json, no processor_config.json
    feature_extractor = json.loads((tiny_ctc / "processor_config.json").read_text())["feature_extractor"]
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(feature_extractor))
    torch.save(old, tmp_path / "pytorch_model.bin")
    loaded = load_ctc_model(str(tmp_path), device="cpu")
    new = load_ctc_model(str(tiny_ctc), device="cpu")
    x = torch.randn(1, 8000)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x).logits, new.model(x).logits)


def test_uncached_hub_model_fails_fast_with_clear_message(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    started = time.perf_counter()
    with pytest.raises(ModelNotAvailableError) as e:
        load_ctc_model("facebook/wav2vec2-base-960h", device="cpu")
    assert time.perf_counter() - started < 6
    msg = str(e.value)
    assert "facebook/wav2vec2-base-960h" in msg and "not in the Hugging Face cache" in msg
    assert "cannot be reached" in msg and "--model" in msg


def test_offline_env_is_honoured(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelNotAvailableError, match="HF_HUB_OFFLINE is set"):
        load_pretraining_model("patrickvonplaten/wav2vec2-base", device="cpu")


def test_missing_local_folder(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="not found"):
        load_ctc_model(str(tmp_path / "nope"), device="cpu")
    with pytest.raises(ModelNotAvailableError, match="holds no model"):
        load_ctc_model(str(tmp_path), device="cpu")


def test_default_model_falls_back_to_builtin_demo_but_a_named_one_never(tmp_path, monkeypatch, tiny_ctc,
                                                                        tiny_pretraining):
    import shutil

    import soundfile as sf
    from click.testing import CliRunner

    from w2v_cli import models
    from w2v_cli.cli import cli
    from w2v_cli.testing import synth_speechlike

    builtin = tmp_path / "models"
    shutil.copytree(tiny_ctc, builtin / "demo")
    shutil.copytree(tiny_pretraining, builtin / "demo-pretrain")
    monkeypatch.setattr(models, "BUILTIN_DIR", builtin)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    sf.write(tmp_path / "a.wav", synth_speechlike(1.0), 16000)
    runner = CliRunner()
    result = runner.invoke(cli, ["transcribe", str(tmp_path / "a.wav")])
    assert result.exit_code == 0, result.output
    assert "facebook/wav2vec2-base-960h is not in the local cache and HF_HUB_OFFLINE is set" in result.stderr
    assert "built-in 'demo' model" in result.stderr and result.stdout.strip()
    named = runner.invoke(cli, ["transcribe", str(tmp_path / "a.wav"), "--model", "facebook/wav2vec2-base-960h"])
    assert named.exit_code == 1 and "is not available" in named.output
    via_set = runner.invoke(cli, ["ctc-loss", str(tmp_path / "a.wav"), "A", "--set", "model.name=facebook/wav2vec2-base-960h"])
    assert via_set.exit_code == 1 and "is not available" in via_set.output
    (tmp_path / "base.yaml").write_text("model:\n  name: facebook/wav2vec2-base-960h\n")
    (tmp_path / "run.yaml").write_text("base: base.yaml\ninference:\n  batch_size: 2\n")
    via_base = runner.invoke(cli, ["transcribe", str(tmp_path / "a.wav"), "--config", str(tmp_path / "run.yaml")])
    assert via_base.exit_code == 1 and "is not available" in via_base.output  # named in a base config
    check = runner.invoke(cli, ["pretrain-check", "--json"])
    assert check.exit_code == 1 and "built-in 'demo-pretrain' model" in check.stderr  # random: fails the check
    assert runner.invoke(cli, ["pretrain-check", "-m", "patrickvonplaten/wav2vec2-base"]).exit_code == 1


def test_outputs_of_the_offline_fallback_are_not_taken_for_the_hub_models(tmp_path, monkeypatch, tiny_ctc):
    """`transcribe -o DIR` that fell back to `demo` records demo as the model: the same command
    offline again skips the input, and once the hub model is to be used it is redone."""
    import json
    import shutil

    import click
    import soundfile as sf
    from click.testing import CliRunner

    from w2v_cli import models
    from w2v_cli.cli import cli, ctc_model_config
    from w2v_cli.config import DEFAULT_CTC_MODEL, load_config
    from w2v_cli.testing import synth_speechlike
    from w2v_cli.transcribe import finished_inputs

    builtin = tmp_path / "models"
    shutil.copytree(tiny_ctc, builtin / "demo")
    monkeypatch.setattr(models, "BUILTIN_DIR", builtin)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    audio, out = tmp_path / "a.wav", tmp_path / "out"
    sf.write(audio, synth_speechlike(1.0), 16000)
    runner = CliRunner()
    args = ["transcribe", str(audio), "-o", str(out), "--decoder", "greedy"]
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "built-in 'demo' model instead" in first.stderr
    record = json.loads((out / ".a.w2v.json").read_text())
    assert record["fingerprint"]["model"]["folder"] == str((builtin / "demo").resolve())
    again = runner.invoke(cli, args)
    assert again.exit_code == 0 and "skipping 1 of 1 inputs" in again.stderr
    config = load_config(flags={"decode.decoder": "greedy"})
    assert config.model.name == DEFAULT_CTC_MODEL
    with click.Context(cli) as ctx:  # as the CLI runs it: no --config, no --set
        ctx.meta["w2v.named"] = set()  # what resolve_config records when nothing named a key
        offline = ctc_model_config(config, None)
        assert offline.model.name == "demo"
        assert ctc_model_config(config, DEFAULT_CTC_MODEL).model.name == DEFAULT_CTC_MODEL  # named: no fallback
        # the hub answers now: the hub model will be loaded, and the demo's output is not its
        monkeypatch.delenv("HF_HUB_OFFLINE")
        monkeypatch.setattr(models, "hub_reachable", lambda *a, **k: True)
        online = ctc_model_config(config, None)
    assert online.model.name == DEFAULT_CTC_MODEL
    assert finished_inputs([audio], online, out) == {}
    assert list(finished_inputs([audio], offline, out)) == [str(audio)]


def test_hub_probe_is_bounded_even_when_the_name_lookup_hangs(monkeypatch):
    import socket
    import time

    from w2v_cli import models

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
    assert models.hub_reachable(timeout_s=2.0)  # something answers: reachable
    server.close()
    assert not models.hub_reachable(timeout_s=2.0)  # nothing listens any more
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: (time.sleep(5), real(*a, **k))[1])
    models._unreachable.clear()  # the failure above is remembered; probe the hanging resolver
    started = time.monotonic()
    assert not models.hub_reachable(timeout_s=0.3)
    assert time.monotonic() - started < 1.5


def test_a_failed_hub_probe_is_remembered_for_a_while(monkeypatch):
    from w2v_cli import models

    probes = []
    answer = [False]
    monkeypatch.setattr(models, "_probe", lambda key, timeout_s: probes.append(key) or answer[0])
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.example:443")
    assert not models.hub_reachable() and not models.hub_reachable()
    assert probes == [("hub.example", 443)]  # asked once: a second caller does not wait again
    monkeypatch.setenv("HF_ENDPOINT", "https://mirror.example")
    assert not models.hub_reachable()
    assert len(probes) == 2  # another endpoint is probed on its own
    monkeypatch.setattr(models, "UNREACHABLE_TTL_S", 0.0)
    answer[0] = True
    assert models.hub_reachable() and models.hub_reachable()
    assert len(probes) == 4  # expired: probed again; a success is never remembered
