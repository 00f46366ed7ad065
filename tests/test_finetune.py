"""w2v finetune and the shared training loop: learning, resume, data check, DDP, signals."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from w2v_cli.cli import cli
from w2v_cli.config import load_config
from w2v_cli.errors import ConfigError, DataError, W2VError
from w2v_cli.finetune import build_model, build_vocab, finetune
from w2v_cli.phones import fold_phones
from w2v_cli.testing import TINY_ARCHITECTURE, make_processor, synth_speechlike
from w2v_cli.training import Task, length_grouped_batches, lr_factor, shard, train

ROOT = Path(__file__).resolve().parents[1]
FOUR = ["1988-24833-0000", "2412-153948-0002", "3752-4944-0000", "3752-4944-0001"]


@pytest.fixture()
def four_manifest(tmp_path, speech_manifest):
    return speech_manifest(tmp_path / "four.tsv", FOUR)


def tiny_config(tmp_path, train, extra=()):
    """A config with the 2-layer, 16-wide test architecture: seconds per run."""
    arch = json.dumps({**TINY_ARCHITECTURE, "hidden_dropout": 0.1})
    return load_config(None, ["model.name=", f"model.architecture={arch}", f"data.train={train}",
                              f"train.output_dir={tmp_path / 'run'}", "train.max_steps=6",
                              "train.batch_size=2", "train.warmup_steps=2", "train.log_every=1",
                              "train.eval_every=0", "train.save_every=3", "train.freeze_feature_encoder=false",
                              "train.mask_time_prob=0.2", *extra])


def digest(folder: Path) -> dict:
    from safetensors.numpy import load_file

    return load_file(folder / "model.safetensors")


def test_tiny_config_learns_four_utterances(tmp_path, four_manifest):
    """configs/tiny.yaml, pointed at 4 utterances, transcribes them with WER <= 0.05."""
    out = tmp_path / "tiny"
    result = CliRunner().invoke(cli, [
        "finetune", "--config", str(ROOT / "configs" / "tiny.yaml"), "-q",
        "--set", f"data.train={four_manifest}", "--set", f"data.eval={four_manifest}",
        "--set", f"train.output_dir={out}"])
    assert result.exit_code == 0, result.output
    evals = [json.loads(line) for line in (out / "eval_log.jsonl").read_text().splitlines()]
    assert evals[-1]["step"] == 300 and evals[0]["wer"] > 0.5  # it started far off ...
    report = tmp_path / "report"
    result = CliRunner().invoke(cli, ["eval", "--model", str(out), "--dataset", str(four_manifest),
                                      "-o", str(report), "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads((report / "summary.json").read_text())
    assert summary["wer"] <= 0.05, summary  # ... and learnt them, through `w2v eval` on the output folder
    # The evaluation during training scores the weights of its step: the last one (step 300)
    # equals `w2v eval` of the saved model. (Its first evaluation packs the conv filters for the
    # fast feature encoder; the fused AdamW updates them in place without moving the tensors'
    # version counter, so without packed_linear.forget later evaluations ran stale filters.)
    assert (evals[-1]["wer"], evals[-1]["cer"]) == pytest.approx((summary["wer"], summary["cer"]), abs=1e-9)
    logs = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert logs[-1]["loss"] < logs[0]["loss"] / 10
    assert {"step", "loss", "lr", "grad_norm", "audio_s_per_s", "elapsed_s"} <= set(logs[0])
    assert (out / "training.png").stat().st_size > 1000 and (out / "best" / "model.safetensors").is_file()
    assert (out / "w2v_config.yaml").is_file() and (out / "vocab.json").is_file()


def test_log_line_says_the_time_left_at_this_process_rate(caplog):
    import logging
    import time

    from w2v_cli.training import TrainerState, _log_line

    state = TrainerState(step=150, elapsed_s=4000.0)  # resumed at step 100, after 4,000 s elsewhere
    now = time.perf_counter()
    window = {"loss": 1.0, "n": 1, "audio_s": 10.0, "t": now - 1, "extra": {}}
    with caplog.at_level(logging.INFO, logger="w2v"):
        row = _log_line(state, 250, window, 1e-3, None, 1, pace=(100, now - 50, 250))
    # 50 steps in this process's 50 s: 100 steps take 100 s more (the earlier 4,000 s do not count)
    assert row["eta_s"] == pytest.approx(100, abs=1)
    assert "01:06:40, 00:01:4" in caplog.text and " left" in caplog.text
    # --stop-after 200: the time left is to step 200, not to the schedule's 250
    assert _log_line(state, 250, window, 1e-3, None, 1, pace=(100, now - 50, 200))["eta_s"] == pytest.approx(50, abs=1)
    done = TrainerState(step=250, elapsed_s=4100.0)
    assert "eta_s" not in _log_line(done, 250, window, 1e-3, None, 1, pace=(100, now - 50, 250))
    assert "eta_s" not in _log_line(TrainerState(step=100), 250, window, 1e-3, None, 1, pace=(100, now, 250))


@pytest.mark.parametrize("flush", [True, False])
def test_denormals_are_flushed_while_training_and_not_after(tmp_path, four_manifest, monkeypatch, flush):
    """train.flush_denormal (default on): float32 values under 1.2e-38 count as zero while
    finetune() runs (x86 computes them slowly; see w2v_cli.training.denormals_flushed), and
    this thread is back to torch's default after, so later numerics are untouched."""
    import torch

    import w2v_cli.finetune as ft

    def survives() -> bool:  # a denormal times one stays non-zero unless denormals are flushed
        return bool((torch.tensor([1e-39], dtype=torch.float32) * 1.0).item() != 0.0)

    seen = []
    monkeypatch.setattr(ft, "train", lambda task, config, resume, stop_after: seen.append(survives()))
    config = tiny_config(tmp_path, four_manifest, [f"train.flush_denormal={str(flush).lower()}"])
    assert load_config(None, []).train.flush_denormal is True
    assert survives()
    finetune(config)
    assert seen == [not flush]
    assert survives()


def test_stopped_and_resumed_run_ends_with_the_same_weights(tmp_path, four_manifest):
    straight = tiny_config(tmp_path / "a", four_manifest)
    finetune(straight)
    split = tiny_config(tmp_path / "b", four_manifest)
    state = finetune(split, stop_after=2)
    assert state.step == 2
    checkpoints = sorted(p.name for p in (tmp_path / "b" / "run" / "checkpoints").iterdir())
    assert checkpoints == ["step-000002"]
    state = finetune(tiny_config(tmp_path / "b", four_manifest))  # finds the checkpoint and resumes
    assert state.step == 6
    a, b = digest(tmp_path / "a" / "run"), digest(tmp_path / "b" / "run")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-4, atol=1e-6, err_msg=key)
    logs = [json.loads(line)["step"] for line in (tmp_path / "b" / "run" / "train_log.jsonl").read_text().splitlines()]
    assert logs == [1, 2, 3, 4, 5, 6]


@pytest.mark.filterwarnings("ignore::UserWarning")  # torch on the pickle it is refusing
def test_resuming_from_a_checkpoint_with_a_planted_pickle_runs_no_code(tmp_path, four_manifest, code_running_pickle):
    finetune(tiny_config(tmp_path, four_manifest), stop_after=3)
    state_dir = tmp_path / "run" / "checkpoints" / "step-000003" / "accelerate"
    for name in ("optimizer.bin", "random_states_0.pkl"):  # the two pickles a checkpoint holds
        assert (state_dir / name).is_file()
        marker = tmp_path / f"ran-{name}"
        saved = (state_dir / name).read_bytes()
        (state_dir / name).write_bytes(code_running_pickle(marker))
        result = CliRunner().invoke(cli, ["finetune", "-q", "--set", "model.name=",
                                          "--set", f"model.architecture={json.dumps(TINY_ARCHITECTURE)}",
                                          "--set", f"data.train={four_manifest}", "--set", "train.max_steps=6",
                                          "--set", "train.batch_size=2", "--set", f"train.output_dir={tmp_path / 'run'}"])
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert "cannot resume from" in result.output and "step-000003" in result.output and "--no-resume" in result.output
        assert not marker.exists()
        (state_dir / name).write_bytes(saved)
    assert finetune(tiny_config(tmp_path, four_manifest)).step == 6  # the restored checkpoint resumes


def test_resuming_a_run_whose_trainable_parameters_changed_names_the_cause(tmp_path, four_manifest):
    finetune(tiny_config(tmp_path, four_manifest), stop_after=3)
    with pytest.raises(W2VError, match=r"cannot resume from .*step-000003.*freeze_feature_encoder changed\?.*--no-resume"):
        finetune(tiny_config(tmp_path, four_manifest, ["train.freeze_feature_encoder=true"]))


def test_feature_encoder_trains_until_the_freeze_step_then_stays_fixed_across_a_resume(tmp_path, four_manifest):
    """train.freeze_feature_encoder_after_steps=3: the conv encoder changes at steps 1-3, not
    after; the rest of the model goes on learning; a run resumed past step 3 freezes it again."""
    from safetensors.numpy import load_file

    config = tiny_config(tmp_path, four_manifest, ["train.freeze_feature_encoder_after_steps=3",
                                                   "train.save_every=1", "train.keep_last=10"])
    assert finetune(config, stop_after=4).step == 4
    assert finetune(config).step == 6  # resumed at step 4, past the freeze step

    def weights(step):
        return load_file(tmp_path / "run" / "checkpoints" / f"step-{step:06d}" / "accelerate" / "model.safetensors")

    conv = "wav2vec2.feature_extractor.conv_layers.0.conv.weight"
    head = "lm_head.weight"
    by_step = {step: weights(step) for step in range(1, 7)}
    for a, b in [(1, 2), (2, 3)]:
        assert not np.array_equal(by_step[a][conv], by_step[b][conv]), f"encoder did not train at step {b}"
    for step in (4, 5, 6):
        assert np.array_equal(by_step[3][conv], by_step[step][conv]), f"encoder changed at step {step}"
        assert not np.array_equal(by_step[step - 1][head], by_step[step][head])


@pytest.mark.parametrize("keys, message", [
    (["train.freeze_feature_encoder=true", "train.freeze_feature_encoder_after_steps=3"],
     r"needs train.freeze_feature_encoder: false"),
    (["train.freeze_feature_encoder_after_steps=-1"], r"must be 0 \(never\) or a step count, got -1"),
])
def test_freeze_after_steps_contradictions_are_config_errors(tmp_path, four_manifest, keys, message):
    with pytest.raises(ConfigError, match=message):
        finetune(tiny_config(tmp_path, four_manifest, keys))
    assert not (tmp_path / "run" / "w2v_config.yaml").exists()  # refused before writing the run's config


def test_masking_keys_reach_a_fresh_and_a_loaded_model(tmp_path):
    """train.mask_* (SpecAugment) override what a checkpoint's config.json says."""
    processor = make_processor(tmp_path / "proc")
    keys = ["train.mask_time_prob=0.5", "train.mask_time_length=4",
            "train.mask_feature_prob=0.25", "train.mask_feature_length=3"]
    fresh = build_model(tiny_config(tmp_path, "unused.tsv", keys), processor)
    fresh.save_pretrained(tmp_path / "saved")  # saved with the values above
    loaded = build_model(load_config(None, [f"model.name={tmp_path / 'saved'}", "train.mask_time_length=6"]),
                         processor)
    for model, time_length, prob, feature_length in ((fresh, 4, 0.25, 3), (loaded, 6, 0.0, 10)):
        assert model.config.mask_time_length == time_length
        assert model.config.mask_feature_prob == prob
        assert model.config.mask_feature_length == feature_length


def test_train_dropout_sets_the_dropouts_of_a_fresh_and_a_loaded_model(tmp_path):
    """train.dropout overrides the checkpoint's dropouts; null keeps them; out of range is an error."""
    processor = make_processor(tmp_path / "proc")
    fresh = build_model(tiny_config(tmp_path, "unused.tsv", ["train.dropout=0.3"]), processor)
    fresh.save_pretrained(tmp_path / "saved")  # saved with dropout 0.3
    kept = build_model(load_config(None, [f"model.name={tmp_path / 'saved'}"]), processor)
    zeroed = build_model(load_config(None, [f"model.name={tmp_path / 'saved'}", "train.dropout=0"]), processor)
    for model, value in ((fresh, 0.3), (kept, 0.3), (zeroed, 0.0)):
        for name in ("hidden_dropout", "attention_dropout", "activation_dropout", "feat_proj_dropout"):
            assert getattr(model.config, name) == value, (name, value)
    assert zeroed.wav2vec2.encoder.layers[0].attention.dropout == 0.0  # reached the modules, not just the config
    assert kept.wav2vec2.encoder.layers[0].attention.dropout == 0.3
    with pytest.raises(ConfigError, match="train.dropout must be at least 0 and below 1"):
        build_model(load_config(None, [f"model.name={tmp_path / 'saved'}", "train.dropout=1.5"]), processor)


def test_data_check_before_the_first_step(tmp_path, speech_dir):
    good = speech_dir / "audio" / "1988-24833-0000.flac"
    sf.write(tmp_path / "short.wav", synth_speechlike(0.05), 16000)  # 12 frames of the tiny model
    (tmp_path / "broken.wav").write_text("not audio")
    manifest = tmp_path / "m.tsv"
    manifest.write_text("id\tpath\ttext\n"
                        f"good\t{good}\tTHE TWO STRAY KITTENS\n"
                        f"good2\t{good}\tTHE TWO STRAY KITTENS GRADUALLY\n"
                        f"short\t{tmp_path / 'short.wav'}\tA SENTENCE FAR TOO LONG FOR A TWELFTH OF A SECOND\n"
                        f"broken\t{tmp_path / 'broken.wav'}\tBROKEN\n"
                        f"empty\t{good}\t\n")
    with pytest.raises(DataError, match="broken.*data.on_bad_item=skip"):
        finetune(tiny_config(tmp_path, manifest, ["data.on_bad_item=stop", "train.max_steps=1"]))
    state = finetune(tiny_config(tmp_path, manifest, ["train.max_steps=1"]))
    assert state.step == 1  # the bad ones were left out, the run went on


def test_nonfinite_batches_are_skipped_and_counted(tmp_path):
    import torch

    model = torch.nn.Linear(4, 1)
    x = torch.randn(8, 4)

    def compute_loss(m, batch, step):
        y = m(x)
        if step == 2:  # a finite loss whose gradient is infinite
            y.register_hook(lambda grad: grad * float("inf"))
        loss = y.pow(2).mean()
        return (loss * float("nan") if step == 1 else loss), {}

    task = Task("test", model, [1.0] * 8, lambda idx, step: {"audio_s": 1.0}, compute_loss,
                lambda m, folder: torch.save(m.state_dict(), folder / "w.pt"))
    config = load_config(None, [f"train.output_dir={tmp_path}", "train.max_steps=4", "train.batch_size=1",
                                "train.warmup_steps=0", "train.log_every=1"])
    state = train(task, config)
    assert state.skipped_nonfinite == 2 and state.step == 4
    assert torch.isfinite(model.weight).all()


def test_batches_are_length_grouped_sharded_and_repeatable():
    durations = [float(d) for d in np.random.default_rng(0).uniform(1, 20, 400)]
    options = load_config(None, ["train.batch_audio_s=40"]).train
    batches = length_grouped_batches(durations, options, epoch=3, seed=1)
    assert batches == length_grouped_batches(durations, options, epoch=3, seed=1)
    assert batches != length_grouped_batches(durations, options, epoch=4, seed=1)
    assert sorted(i for b in batches for i in b) == list(range(400))
    assert all(sum(durations[i] for i in b) <= 40 or len(b) == 1 for b in batches)
    spread = np.mean([max(durations[i] for i in b) - min(durations[i] for i in b) for b in batches if len(b) > 1])
    assert spread < 3  # similar lengths together: little padding
    a, b = shard(batches, 0, 2), shard(batches, 1, 2)
    assert len(a) == len(b) and not {tuple(x) for x in a} & {tuple(x) for x in b}
    train_options = load_config(None, ["train.warmup_steps=10"]).train
    assert lr_factor(0, 100, train_options) == pytest.approx(0.1) and lr_factor(99, 100, train_options) < 0.02


def test_vocab_and_phone_folding():
    vocab = build_vocab(["HELLO WORLD", "ÀB"])
    assert list(vocab)[:5] == ["<pad>", "<s>", "</s>", "<unk>", "|"] and "À" in vocab and " " not in vocab
    assert fold_phones(["h#", "sh", "ix", "hv", "ae", "dcl", "d", "q", "pau", "h#"]) == \
        ["sil", "sh", "ih", "hh", "ae", "sil", "d", "sil"]


def test_phoneme_targets_from_timit(tmp_path):
    from test_data import write_timit_utterance

    root = tmp_path / "TIMIT" / "TRAIN" / "DR1" / "FAKS0"
    for i in range(3):
        write_timit_utterance(root, f"SX{i}", "She had your dark suit.", 1.0, i)
    config = tiny_config(tmp_path, str(tmp_path / "TIMIT"), ["data.labels=phonemes", "train.max_steps=2",
                                                             f"data.eval={tmp_path / 'TIMIT'}"])
    finetune(config)
    vocab = json.loads((tmp_path / "run" / "vocab.json").read_text())
    assert {"sh", "iy", "hh", "ae", "sil"} <= set(vocab) and "dcl" not in vocab
    evals = [json.loads(line) for line in (tmp_path / "run" / "eval_log.jsonl").read_text().splitlines()]
    assert "per" in evals[-1]


def test_two_processes_train_identical_replicas(tmp_path, four_manifest):
    """torchrun with 2 CPU processes (gloo): both train, and the weights stay identical."""
    torchrun = Path(sys.executable).parent / "torchrun"
    arch = json.dumps(TINY_ARCHITECTURE)
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", "--master_port", "29533", "-m", "w2v_cli.cli", "finetune",
         "--set", "model.name=", "--set", f"model.architecture={arch}", "--set", f"data.train={four_manifest}",
         "--set", f"train.output_dir={out}", "--set", "train.max_steps=3", "--set", "train.batch_size=1",
         "--set", "train.eval_every=0", "--set", "train.log_every=1", "--set", "train.freeze_feature_encoder=false"],
        capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "running 2 process(es)" in result.stderr
    ranks = [json.loads((out / "ranks" / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["weights"] == ranks[1]["weights"]
    assert all(r["step"] == 3 and r["audio_s"] > 0 for r in ranks)


def test_cli_errors_and_help(tmp_path, four_manifest):
    runner = CliRunner()
    assert "Fine-tune a wav2vec2" in runner.invoke(cli, ["finetune", "--help"]).output
    result = runner.invoke(cli, ["finetune", "--config", str(ROOT / "configs" / "tiny.yaml"),
                                 "--set", f"train.output_dir={tmp_path}"])
    assert result.exit_code == 1 and "data.train is not set" in result.output
    for arch, message in [("{hidden_size: -3}", "model.architecture is not a valid"),
                          ("{hiden_size: 8}", "unknown Wav2Vec2Config field 'hiden_size'; did you mean 'hidden_size'")]:
        with pytest.raises(ConfigError, match=message):
            finetune(load_config(None, ["model.name=", f"model.architecture={arch}",
                                        f"data.train={four_manifest}", f"train.output_dir={tmp_path / 'x'}"]))
