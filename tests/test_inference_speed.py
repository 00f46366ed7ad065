"""The fast inference path: exact where exactness is promised, and close where a lower
precision is asked for. No timings here; speed is measured by scripts/bench_transcribe.py."""

import threading

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from w2v_cli import feature_encoder, heap, packed_linear
from w2v_cli.cli import cli
from w2v_cli.config import InferenceConfig
from w2v_cli.errors import AudioError
from w2v_cli.feature_encoder import encode, prepare_for_inference
from w2v_cli.inference import AudioSource, Engine, array_source, collapse_repeats
from w2v_cli.models import configure_threads, load_ctc_model, pick_dtype
from w2v_cli.testing import make_tiny_ctc_model, synth_speechlike

MODELS = ["tiny_ctc", "tiny_ctc_layernorm"]  # group-norm (wav2vec2-base) and layer-norm (large, XLS-R)


def run(loaded, sources, **options):
    return list(Engine(loaded, InferenceConfig(progress=False, **options)).run(sources))


def transformers_model(path, dtype=torch.float32):
    from transformers import Wav2Vec2ForCTC

    return Wav2Vec2ForCTC.from_pretrained(str(path)).eval().to(dtype)


@pytest.mark.parametrize("fixture", MODELS + ["conv_bias"])
@pytest.mark.parametrize("block", [7, 100, 100_000])  # output frames per block of the conv stack
def test_fast_feature_encoder_equals_transformers(fixture, block, request, tmp_path, monkeypatch):
    monkeypatch.setattr(feature_encoder, "BLOCK_FRAMES", block)
    path = (make_tiny_ctc_model(tmp_path, seed=4, conv_bias=True) if fixture == "conv_bias"
            else request.getfixturevalue(fixture))
    reference, fast = transformers_model(path), transformers_model(path)
    assert prepare_for_inference(fast)
    fused = []  # the group-norm models' first layer: one GEMM with the GELU fused in

    class Counted(feature_encoder._FusedFilters):
        def __init__(self, weight):
            fused.append(1)
            super().__init__(weight)

    monkeypatch.setattr(feature_encoder, "_FusedFilters", Counted)
    x = torch.from_numpy(np.stack([synth_speechlike(2.3, seed=i) for i in range(2)]))
    with torch.inference_mode():
        expected_features = reference.wav2vec2.feature_extractor(x).transpose(1, 2)
        features = encode(fast.wav2vec2.feature_extractor, x)
        expected, got = reference(x).logits, fast(x).logits
    group_norm = fast.config.feat_extract_norm == "group"
    assert bool(fused) == (group_norm and packed_linear._available(torch.float32))
    assert features.shape == expected_features.shape  # (batch, frames, 32)
    torch.testing.assert_close(features, expected_features, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert torch.equal(got.argmax(-1), expected.argmax(-1))
    # With gradients wanted (training, ctc-loss with backward) the original forward runs.
    loss = fast(x).logits.sum()
    loss.backward()
    assert fast.wav2vec2.feature_extractor.conv_layers[1].conv.weight.grad is not None


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
@pytest.mark.parametrize("fixture", MODELS)
def test_transcript_does_not_depend_on_batch_or_neighbours(fixture, dtype, request):
    loaded = load_ctc_model(str(request.getfixturevalue(fixture)), device="cpu", dtype=dtype)
    # Two long inputs whose 3 s chunks share a length, and short ones of equal length, so
    # batches mix chunks of different recordings.
    clips = [synth_speechlike(s, seed=i) for i, s in enumerate((7.6, 1.0, 6.9, 1.0, 0.6))]
    sources = [array_source(str(i), c, 16000) for i, c in enumerate(clips)]
    options = dict(chunk_s=3, stride_s=0.5)
    alone = [run(loaded, [s], batch_size=1, **options)[0].frame_ids for s in sources]
    for batch_size in (2, 4):
        for order in (sources, sources[::-1]):
            results = {r.key: r.frame_ids for r in run(loaded, order, batch_size=batch_size, **options)}
            for i, ids in enumerate(alone):
                np.testing.assert_array_equal(results[str(i)], ids)


def test_bf16_transcripts_stay_close_to_fp32(tiny_ctc):
    clips = [synth_speechlike(s, seed=i) for i, s in enumerate((3.0, 7.5))]
    sources = [array_source(str(i), c, 16000) for i, c in enumerate(clips)]

    def run_with_log_probs(dtype):
        loaded = load_ctc_model(str(tiny_ctc), device="cpu", dtype=dtype)
        return list(Engine(loaded, InferenceConfig(progress=False), keep_log_probs=True).run(sources))

    for a, b in zip(run_with_log_probs("fp32"), run_with_log_probs("bf16")):
        assert len(a.frame_ids) == len(b.frame_ids)
        # bf16 moves the logits by rounding, not more: a few percent of their spread (a
        # broken bf16 kernel, see conv_guard.py, moved them by 30%).
        centred_a = a.log_probs - a.log_probs.mean(-1, keepdims=True)
        centred_b = b.log_probs - b.log_probs.mean(-1, keepdims=True)
        assert np.linalg.norm(centred_b - centred_a) < 0.05 * np.linalg.norm(centred_a)
        # A random model's logits are near-ties everywhere, the worst case for rounding: its
        # median top-two margin is ~0.02 nats. Where fp32's margin is 0.05 or more, bf16 must
        # pick the same token; the benchmark reports the agreement on wav2vec2-base.
        top2 = np.sort(a.log_probs, -1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] >= 0.05
        assert clear.sum() > 50
        np.testing.assert_array_equal(a.frame_ids[clear], b.frame_ids[clear])
        assert (a.frame_ids == b.frame_ids).mean() > 0.9


def test_convs_that_torch_gets_wrong_in_bf16_run_in_float32(tiny_ctc, monkeypatch):
    from w2v_cli import conv_guard

    fp32 = load_ctc_model(str(tiny_ctc), device="cpu", dtype="fp32").model
    bf16 = load_ctc_model(str(tiny_ctc), device="cpu", dtype="bf16").model
    x = torch.randn(2, 16, 60, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():  # the positional conv (8 channels per group, 16 taps)
        want = fp32.wav2vec2.encoder.pos_conv_embed.conv(x)
        got = bf16.wav2vec2.encoder.pos_conv_embed.conv(x.bfloat16())
    assert got.dtype == torch.bfloat16
    assert torch.linalg.norm(got.float() - want) < 0.02 * torch.linalg.norm(want)
    # A shape the probe finds wrong runs in float32, whatever this machine's kernels do.
    conv = torch.nn.Conv1d(64, 64, 16, padding=8, groups=2).to(torch.bfloat16)
    monkeypatch.setattr(conv_guard, "probe_error", lambda module: 1.0)
    assert conv_guard.guard_convs(torch.nn.Sequential(conv)) == ["0 (relative error 1.00 on a probe)"]
    x = torch.randn(1, 64, 40).bfloat16()
    with torch.inference_mode():
        want = torch.nn.functional.conv1d(x.float(), conv.weight.float(), conv.bias.float(), padding=8, groups=2)
        np.testing.assert_array_equal(conv(x).float().numpy(), want.bfloat16().float().numpy())
    assert conv_guard.guard_convs(torch.nn.Sequential(conv)) == []  # patched once
    monkeypatch.setattr(conv_guard, "probe_error", lambda module: 0.003)
    assert conv_guard.guard_convs(torch.nn.Sequential(torch.nn.Conv1d(64, 64, 16).bfloat16())) == []


def test_collapse_repeats_decodes_like_the_tokenizer(tiny_ctc):
    loaded = load_ctc_model(str(tiny_ctc), device="cpu")
    tokenizer = loaded.processor.tokenizer
    rng = np.random.default_rng(0)
    for n in (0, 1, 2, 50, 2000):
        ids = rng.choice([0, 0, 0, 4, 5, 5, 6, 2, 1], size=n)  # blanks, repeats, <s>, </s>, |
        assert tokenizer.decode(collapse_repeats(ids).tolist()) == tokenizer.decode(ids.tolist())
    np.testing.assert_array_equal(collapse_repeats(np.array([7, 7, 0, 7, 7, 7, 3])), [7, 0, 7, 3])


def test_auto_dtype_is_bf16_only_where_the_cpu_has_it(monkeypatch):
    monkeypatch.setattr("w2v_cli.models.cpu_has_bf16", lambda: True)
    assert pick_dtype("auto", "cpu") == torch.bfloat16
    monkeypatch.setattr("w2v_cli.models.cpu_has_bf16", lambda: False)
    assert pick_dtype("auto", "cpu") == torch.float32
    assert pick_dtype("fp16", "cpu") == torch.float16 and pick_dtype("fp32", "cpu") == torch.float32


def test_threads_are_shared_among_launched_processes(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "64")
        assert configure_threads(0) == 1 == torch.get_num_threads()
        assert configure_threads(3) == 3 == torch.get_num_threads()
        monkeypatch.delenv("LOCAL_WORLD_SIZE")
        assert configure_threads(0) == before
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16", "auto"])
def test_cli_dtype_and_threads(tiny_ctc, speech_dir, dtype):
    path = speech_dir / "audio" / "1272-128104-0000.flac"
    before = torch.get_num_threads()
    try:
        result = CliRunner().invoke(cli, ["transcribe", str(path), "--model", str(tiny_ctc),
                                          "--dtype", dtype, "--num-threads", "1", "-q"])
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.strip()) > 10
    bad = CliRunner().invoke(cli, ["transcribe", str(path), "--dtype", "fp8"])
    assert bad.exit_code == 2 and "'fp8' is not one of" in bad.output


def test_audio_is_read_while_the_model_runs(tiny_ctc):
    """The reader thread decodes the next input while the model works on this one: the
    first forward waits until the second input has started being read, which can only
    happen concurrently (a sequential reader would leave it waiting out the timeout)."""
    loaded = load_ctc_model(str(tiny_ctc), device="cpu")
    second_started = threading.Event()

    def opener(seconds, event=None):
        def blocks():
            if event is not None:
                event.set()
            yield synth_speechlike(seconds)
        return blocks

    sources = [AudioSource("a", opener(1.0)), AudioSource("b", opener(1.5, second_started))]
    engine = Engine(loaded, InferenceConfig(progress=False, batch_size=1))
    overlapped = []
    forward = engine.forward

    def waiting_forward(batch, **kwargs):
        if not overlapped:
            overlapped.append(second_started.wait(timeout=20))
        return forward(batch, **kwargs)

    engine.forward = waiting_forward
    results = list(engine.run(sources))
    assert overlapped == [True]
    assert [r.key for r in results] == ["a", "b"] and all(r.error is None for r in results)


def test_fast_encoder_leaves_a_model_in_training_as_it_was(tiny_ctc):
    """w2v finetune evaluates the model it trains through the same engine."""
    import copy

    model = transformers_model(tiny_ctc)
    names = sorted(name for name, _ in model.named_parameters())
    assert prepare_for_inference(model)
    assert sorted(name for name, _ in model.named_parameters()) == names
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for p in twin.parameters():
            p.mul_(0.5)
    x = torch.from_numpy(synth_speechlike(1.0))[None]
    twin.train()
    model.train()
    torch.manual_seed(0)
    a = twin(x).logits
    torch.manual_seed(0)
    b = model(x).logits
    assert not torch.allclose(a, b)  # the copy runs its own weights, not the original's


def clips_and_sources(durations=(7.6, 1.0, 6.9, 1.0, 0.6, 2.2, 1.0)):
    clips = [synth_speechlike(s, seed=i) for i, s in enumerate(durations)]
    return [array_source(str(i), c, 16000) for i, c in enumerate(clips)]


@pytest.mark.parametrize("fixture", MODELS)
def test_model_calls_at_once_give_the_same_transcripts(fixture, request):
    """Two worker threads with one thread each give, in input order, exactly what one call
    at a time on one thread gives (a failing input in the middle included)."""
    loaded = load_ctc_model(str(request.getfixturevalue(fixture)), device="cpu")
    sources = clips_and_sources()

    def broken():
        yield synth_speechlike(0.5)
        raise AudioError("broken.wav", "the file ends in the middle of a frame")

    sources.insert(3, AudioSource("broken", broken))
    options = dict(chunk_s=3, stride_s=0.5, batch_size=2)
    one = run(loaded, sources, num_threads=1, workers=1, **options)
    assert torch.get_num_threads() == 1
    two = run(loaded, sources, num_threads=2, workers=2, **options)
    assert torch.get_num_threads() == 2  # restored after the run
    assert [r.key for r in two] == [r.key for r in one] == [s.key for s in sources]
    assert two[3].error and "ends in the middle" in two[3].error and one[3].error == two[3].error
    for a, b in zip(one, two):
        if a.error is None:
            np.testing.assert_array_equal(a.frame_ids, b.frame_ids)
            assert a.text == b.text and a.duration_s == b.duration_s


def test_workers_really_run_at_once(tiny_ctc):
    """The first two model calls each wait for the other: only concurrent calls get past."""
    loaded = load_ctc_model(str(tiny_ctc), device="cpu")
    engine = Engine(loaded, InferenceConfig(progress=False, batch_size=1, num_threads=2, workers=2))
    barrier = threading.Barrier(2, timeout=20)
    calls = []
    forward = engine._forward

    def meeting_forward(batch, log_probs):
        calls.append(threading.current_thread().name)
        if len(calls) <= 2:
            barrier.wait()  # BrokenBarrierError after 20 s if the calls ran one at a time
        return forward(batch, log_probs)

    engine._forward = meeting_forward
    results = list(engine.run(clips_and_sources()))
    assert all(r.error is None for r in results) and len(calls) == 7
    assert all(name.startswith("w2v-model") for name in calls)


def test_auto_workers_need_enough_work(tiny_ctc):
    loaded = load_ctc_model(str(tiny_ctc), device="cpu")
    engine = Engine(loaded, InferenceConfig(progress=False, num_threads=2))
    many = clips_and_sources()
    assert engine.workers_for(many) == 2
    assert engine.workers_for(many[:1]) == 1  # one short file keeps both threads
    long = AudioSource("long", lambda: iter(()), duration_s=600.0)
    assert engine.workers_for([long]) == 2  # 43 chunks of 20 s: 11 calls of 4
    assert Engine(loaded, InferenceConfig(progress=False, num_threads=1)).workers_for(many) == 1
    assert Engine(loaded, InferenceConfig(progress=False, num_threads=2, workers=1)).workers_for(many) == 1


def test_packed_linears_match_and_follow_weight_updates():
    """bf16 linear layers (the only ones packed; float32 ones: see the next test)."""
    from w2v_cli.packed_linear import pack_linears

    dtype = torch.bfloat16
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(48, 96), torch.nn.GELU(), torch.nn.Linear(96, 16)).to(dtype)
    x = torch.randn(3, 29, 48).to(dtype)

    def plain(x):
        with torch.inference_mode():
            return torch.nn.functional.linear(
                torch.nn.functional.gelu(torch.nn.functional.linear(x, model[0].weight, model[0].bias)),
                model[2].weight, model[2].bias)

    assert pack_linears(model) == 2 and pack_linears(model) == 0  # packed once
    model.eval()
    with torch.inference_mode():
        got = model(x)
    assert got.shape == (3, 29, 16) and model[0]._w2v_packed is not None  # the packed path ran
    first_packing = model[0]._w2v_packed
    torch.testing.assert_close(got.float(), plain(x).float(), rtol=2e-2, atol=2e-2)
    # An optimizer step changes the weights in place: the next call must use the new ones.
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=10.0)
    model(x).float().square().mean().backward()  # the class's own forward: gradients flow
    assert model[0].weight.grad is not None
    optimizer.step()
    model.eval()
    with torch.inference_mode():
        after = model(x)
    torch.testing.assert_close(after.float(), plain(x).float(), rtol=2e-2, atol=2e-2)
    assert not torch.allclose(after.float(), got.float(), atol=0.1)
    assert model[0]._w2v_packed is not first_packing  # re-packed after the update


def test_fp32_linears_are_left_alone_bf16_ones_give_close_logits(tiny_ctc):
    """float32 linear layers stay unpacked (memory); bf16 ones give bf16-close logits."""
    from w2v_cli.packed_linear import pack_linears

    assert pack_linears(transformers_model(tiny_ctc)) == 0
    plain = transformers_model(tiny_ctc, torch.bfloat16)
    packed = transformers_model(tiny_ctc, torch.bfloat16)
    assert pack_linears(packed) > 0
    x = torch.from_numpy(synth_speechlike(2.0, seed=3))[None].bfloat16()
    with torch.inference_mode():
        want, got = plain(x).logits.float(), packed(x).logits.float()
    torch.testing.assert_close(got, want, rtol=0.05, atol=0.05)


def test_fast_encoder_follows_weight_updates(tiny_ctc):
    """The packed conv filters are re-made after an in-place update (an optimizer step)."""
    model = transformers_model(tiny_ctc)
    assert prepare_for_inference(model)
    encoder = model.wav2vec2.feature_extractor
    x = torch.from_numpy(synth_speechlike(1.5, seed=5))[None]

    def both():
        with torch.inference_mode():
            return encode(encoder, x), type(encoder).forward(encoder, x).transpose(1, 2)

    before, _ = both()
    with torch.no_grad():
        for layer in encoder.conv_layers[1:]:
            layer.conv.weight.mul_(-0.5)
    after, expected = both()
    torch.testing.assert_close(after, expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(after, before, atol=1e-3)


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


@pytest.mark.skipif(not heap.available(), reason="malloc_trim is glibc's")
def test_heap_trim_hands_free_pages_in_the_middle_of_the_heap_back():
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(100_000) for _ in range(1000)]  # under the mmap threshold: heap memory
    for b in blocks:
        ctypes.memset(b, 1, 100_000)  # resident
    for b in blocks[:-1]:  # the last block pins the heap's top, so free() cannot shrink it
        libc.free(b)
    before = _rss_kb()
    trimmer = heap.HeapTrimmer(every_s=0)
    assert trimmer.maybe_trim()
    after = _rss_kb()
    libc.free(blocks[-1])
    assert before - after > 50_000, (before, after)  # of the ~100 MB freed


def test_engine_trims_the_heap_between_batches(tiny_ctc, monkeypatch):
    import w2v_cli.inference as inference

    trims = []

    class Counting(heap.HeapTrimmer):
        def __init__(self, every_s=5.0):
            super().__init__(every_s=0)

        def maybe_trim(self):
            trims.append(1)
            return super().maybe_trim()

    monkeypatch.setattr(inference, "HeapTrimmer", Counting)
    loaded = load_ctc_model(str(tiny_ctc), dtype="fp32")
    audio = synth_speechlike(9.0, 16000, seed=1)
    [result] = run(loaded, [array_source("long", audio, 16000)], chunk_s=2.0, stride_s=0.4, batch_size=1)
    assert result.error is None
    assert len(trims) >= 5  # once per batch taken: 9 s in 1.2 s steps


@pytest.mark.parametrize("heads_at_once", [1, 2, 6])
def test_fast_attention_is_close_to_float32_attention_masked_or_not(heads_at_once, monkeypatch):
    """attention.py's bf16 path against float32 eager attention, beside torch's bf16 SDPA:
    both deviate by bf16 rounding only, however many heads it computes at once; and with
    gradients wanted it is SDPA itself."""
    from w2v_cli import attention
    from w2v_cli.attention import _attention

    monkeypatch.setattr(attention, "SCORES_BYTES", heads_at_once * 2 * 37 * 37)
    assert attention.heads_at_once(6, 37) == heads_at_once
    torch.manual_seed(0)
    module = torch.nn.Module().eval()
    q, k, v = (torch.randn(2, 6, 37, 16) for _ in range(3))
    keep = torch.ones(2, 1, 37, 37, dtype=torch.bool)
    keep[1, ..., 30:] = False  # the second item is padded: its last 7 frames are not attended to
    additive = torch.zeros(2, 1, 37, 37).masked_fill(~keep, float("-inf"))
    for mask in (None, keep, additive):
        want = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2)
        bf16 = [t.bfloat16() for t in (q, k, v)]
        bf16_mask = mask.bfloat16() if mask is not None and mask.dtype != torch.bool else mask
        with torch.inference_mode():
            got, weights = _attention(module, *bf16, bf16_mask, scaling=16 ** -0.5)
            sdpa = torch.nn.functional.scaled_dot_product_attention(*bf16, attn_mask=bf16_mask).transpose(1, 2)
        assert weights is None and got.dtype == torch.bfloat16 and got.shape == (2, 37, 6, 16)
        for h in range(6):  # every head (a wrong slice of `out` would leave one unwritten or mixed up)
            error = (got[:, :, h].float() - want[:, :, h]).norm() / want[:, :, h].norm()
            sdpa_error = (sdpa[:, :, h].float() - want[:, :, h]).norm() / want[:, :, h].norm()
            assert error < 0.01 and error < 3 * sdpa_error + 1e-3, (h, error, sdpa_error)
    # Training (or any gradient): the model's own SDPA runs, gradients flow.
    module.train()
    leaf = q.bfloat16().requires_grad_()
    out, _ = _attention(module, leaf, k.bfloat16(), v.bfloat16(), None, scaling=16 ** -0.5)
    out.float().sum().backward()
    assert leaf.grad is not None


def test_heads_at_once_fit_the_score_budget():
    from w2v_cli.attention import SCORES_BYTES, heads_at_once

    assert SCORES_BYTES == 1 << 20
    assert heads_at_once(12, 150) == 12  # a 3 s input: all heads (540 KB of scores)
    assert heads_at_once(12, 250) == 6  # 5 s: 750 KB
    assert heads_at_once(12, 350) == 4
    assert heads_at_once(12, 1000) == 1  # a 20 s chunk: one head's 2 MB
    assert heads_at_once(16, 300) == 4 and heads_at_once(7, 100) == 7 and heads_at_once(7, 300) == 1


@pytest.mark.parametrize("fixture", MODELS)
def test_bf16_models_get_the_fast_attention_and_nothing_else_changes(fixture, request, tmp_path, monkeypatch):
    import json

    from w2v_cli import attention

    masks = []  # what the attention gets: transformers passes no padding mask to a name it does not know

    def spy(module, query, key, value, attention_mask, **kwargs):
        masks.append(attention_mask)
        return real(module, query, key, value, attention_mask, **kwargs)

    real = attention._attention
    monkeypatch.setattr(attention, "_attention", spy)
    path = request.getfixturevalue(fixture)
    assert not attention.use_fast_attention(transformers_model(path))  # float32: untouched
    plain, fast = transformers_model(path, torch.bfloat16), transformers_model(path, torch.bfloat16)
    assert attention.use_fast_attention(fast) and fast.config._attn_implementation == attention.NAME
    # a padded batch, with the attention mask where the model takes one (layer-norm models)
    x = torch.from_numpy(np.stack([synth_speechlike(2.0, seed=5), synth_speechlike(2.0, seed=6)]))
    mask = torch.ones(2, x.shape[1], dtype=torch.long)
    mask[1, 20000:] = 0
    x[1, 20000:] = 0
    kwargs = {"attention_mask": mask} if fixture == "tiny_ctc_layernorm" else {}
    with torch.inference_mode():
        want, got = plain(x.bfloat16(), **kwargs).logits.float(), fast(x.bfloat16(), **kwargs).logits.float()
    assert len(masks) == fast.config.num_hidden_layers
    if kwargs:  # the padded item's last frames are masked out for every query
        assert all(m is not None and not m[1, ..., -10:].any() and m[0].all() for m in masks)
    scale = want.abs().max()
    torch.testing.assert_close(got, want, rtol=0.02, atol=0.02 * scale)
    # Nothing of it is saved with the model.
    fast.save_pretrained(tmp_path)
    assert "w2v" not in (tmp_path / "config.json").read_text()
    assert json.loads((tmp_path / "config.json").read_text()).get("_attn_implementation") in (None, "sdpa")
    # The engine installs it for bf16 on CPU.
    loaded = load_ctc_model(str(path), device="cpu", dtype="bf16")
    Engine(loaded, InferenceConfig(progress=False))
    assert loaded.model.config._attn_implementation == attention.NAME


def test_train_dtype_auto_is_bf16_only_where_the_hardware_has_it(monkeypatch):
    from w2v_cli.training import mixed_precision

    monkeypatch.setattr("w2v_cli.models.cpu_has_bf16", lambda: True)
    assert mixed_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr("w2v_cli.models.cpu_has_bf16", lambda: False)
    assert mixed_precision("auto", "cpu") == "no"
    assert [mixed_precision(d, "cpu") for d in ("fp32", "bf16", "fp16")] == ["no", "bf16", "fp16"]


def _float32_positional_conv(module, x):
    """The positional convolution in float32 (the module's weights cast up), for reference."""
    conv = module.conv
    with torch.inference_mode():
        out = torch.nn.functional.conv1d(x.float().transpose(1, 2), conv.weight.detach().float(),
                                         conv.bias.detach().float(), padding=conv.padding[0], groups=conv.groups)
        if module.padding.num_pad_remove:
            out = out[:, :, :-module.padding.num_pad_remove]
        return torch.nn.functional.gelu(out).transpose(1, 2)


@pytest.mark.parametrize("fixture", MODELS)
def test_fast_positional_conv_matches_float32_and_follows_weight_updates(fixture, request, monkeypatch):
    from w2v_cli import packed_linear, positional

    path = request.getfixturevalue(fixture)
    assert positional.use_fast_positional_conv(transformers_model(path)) == 0  # float32: left to torch
    plain, fast = transformers_model(path, torch.bfloat16), transformers_model(path, torch.bfloat16)
    assert positional.use_fast_positional_conv(fast) == 1 and positional.use_fast_positional_conv(fast) == 0
    module, torch_module = fast.wav2vec2.encoder.pos_conv_embed, plain.wav2vec2.encoder.pos_conv_embed
    monkeypatch.setattr(positional, "ROWS", 16)  # several row blocks per group below
    torch.manual_seed(0)
    for frames in (1, 5, 16, 37):
        x = torch.randn(2, frames, module.conv.in_channels).bfloat16()
        with torch.inference_mode():
            got, by_torch = module(x), torch_module(x)
        want = _float32_positional_conv(module, x)
        assert got.shape == by_torch.shape == (2, frames, module.conv.out_channels) and got.dtype == torch.bfloat16
        error = (got.float() - want).norm() / want.norm()
        torch_error = (by_torch.float() - want).norm() / want.norm()
        assert error < 0.01 and error < 3 * torch_error + 1e-3, (frames, error, torch_error)
    # The whole model: logits as close to the plain bf16 model's as bf16 allows.
    audio = torch.from_numpy(synth_speechlike(2.0, seed=7))[None].bfloat16()
    with torch.inference_mode():
        torch.testing.assert_close(fast(audio).logits.float(), plain(audio).logits.float(), rtol=0.05, atol=0.05)
    # An in-place update of the weight-normed weight (as an optimizer step) is followed ...
    packed = module._w2v_packed
    with torch.no_grad():
        module.conv.parametrizations.weight.original1.mul_(-0.5)
    x = torch.randn(1, 37, module.conv.in_channels).bfloat16()
    with torch.inference_mode():
        after = module(x)
    assert module._w2v_packed is not packed
    want = _float32_positional_conv(module, x)
    assert (after.float() - want).norm() / want.norm() < 0.01
    # ... and packed_linear.forget (for updates the version counter misses) drops the copy.
    assert packed_linear.forget(fast) > 0 and module._w2v_packed is None
    # With gradients wanted, the class's own forward runs and gradients flow.
    fast.train()
    module(x.float().bfloat16().requires_grad_()).float().sum().backward()
    assert module.conv.parametrizations.weight.original1.grad is not None


def test_fast_positional_conv_is_not_used_where_it_disagrees_on_the_probe(tiny_ctc, monkeypatch):
    from w2v_cli import positional

    real = positional.positional_conv
    monkeypatch.setattr(positional, "positional_conv", lambda module, x: -real(module, x))
    model = transformers_model(tiny_ctc, torch.bfloat16)
    assert positional.use_fast_positional_conv(model) == 0
    assert "forward" not in vars(model.wav2vec2.encoder.pos_conv_embed)  # the class's own forward


def test_engine_uses_the_fast_positional_conv_in_bf16_only(tiny_ctc):
    for dtype, expected in (("bf16", True), ("fp32", False)):
        loaded = load_ctc_model(str(tiny_ctc), device="cpu", dtype=dtype)
        Engine(loaded, InferenceConfig(progress=False))
        assert getattr(loaded.model.wav2vec2.encoder.pos_conv_embed, "_w2v_fast", False) is expected


def test_gpu_forwards_leave_out_cudnn_attention_and_restore_it():
    """gpu_kernels: on CUDA, scaled_dot_product_attention may not pick cuDNN's kernel during
    the forward (the others stay allowed), and the setting is back afterwards even when the
    forward fails; on a CPU nothing changes."""
    from types import SimpleNamespace

    from w2v_cli.inference import gpu_kernels

    assert torch.backends.cuda.cudnn_sdp_enabled() and torch.backends.cuda.flash_sdp_enabled()
    with gpu_kernels(SimpleNamespace(device="cuda", dtype=torch.bfloat16)):
        assert not torch.backends.cuda.cudnn_sdp_enabled()
        assert torch.backends.cuda.flash_sdp_enabled() and torch.backends.cuda.mem_efficient_sdp_enabled()
        assert torch.backends.cuda.math_sdp_enabled()
    assert torch.backends.cuda.cudnn_sdp_enabled()
    with gpu_kernels(SimpleNamespace(device="cpu", dtype=torch.bfloat16)):
        assert torch.backends.cuda.cudnn_sdp_enabled()
    with pytest.raises(RuntimeError), gpu_kernels(SimpleNamespace(device="cuda", dtype=torch.float32)):
        raise RuntimeError("a forward that fails")
    assert torch.backends.cuda.cudnn_sdp_enabled()


def test_gpu_kernels_hold_while_any_worker_thread_is_inside():
    """Two threads' forwards overlap (a library user's threads calling Engine.forward): cuDNN's
    attention stays off until the last one leaves (torch's switch is process-wide; a per-forward
    save/restore let the first thread to leave turn it back on under the other's forward), and
    is restored then."""
    from types import SimpleNamespace

    from w2v_cli.inference import gpu_kernels

    cuda = SimpleNamespace(device="cuda", dtype=torch.bfloat16)
    a_inside, b_inside, a_left = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def a():
        with gpu_kernels(cuda):
            a_inside.set()
            b_inside.wait(5)
        a_left.set()

    def b():
        a_inside.wait(5)
        with gpu_kernels(cuda):
            b_inside.set()
            a_left.wait(5)
            seen["after a left"] = torch.backends.cuda.cudnn_sdp_enabled()

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == {"after a left": False}
    assert torch.backends.cuda.cudnn_sdp_enabled()


def test_bench_verdicts_compare_each_measurement_with_its_target(load_script):
    """scripts/bench_transcribe.py prints, under its table, each CPU target of the 79
    recordings with the measured value and whether it is met; at the line counts as met."""
    bench = load_script("bench_transcribe")
    met = bench.verdicts(1.16, 0.0, 2.12, "bf16", [22.2, 22.5, 22.8], 18.1)
    assert [line.endswith(": met)") for line in met] == [True] * 4
    assert "1.16×" in met[0] and "0.0000" in met[1] and "2.12×" in met[2]
    assert "1.243" in met[3] and "median of 3" in met[3]
    missed = bench.verdicts(1.13, 0.02, 1.99, "bf16", [24.7, 23.5, 27.7], 18.7)
    assert [line.endswith("NOT met)") for line in missed] == [True] * 4
    assert "1.321" in missed[3]  # the median run (24.7 s), not the fastest
    edge = bench.verdicts(1.15, 0.01, 2.0, "bf16", [13.0], 10.0)
    assert all(line.endswith(": met)") for line in edge)
    assert "not measured" in bench.verdicts(1.2, 0.0, 1.0, "fp32", [], 10.0)[3]
