"""Beam search (pyctcdecode, kenlm: optional, `make install-lm`) and the n-gram LM builder."""

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from w2v_cli.cli import cli
from w2v_cli.errors import W2VError
from w2v_cli.lm import BOS, build_lm, read_arpa
from w2v_cli.testing import make_processor, synth_speechlike

TOY = "the cat sat on the mat\nthe dog sat on the log\na cat and a dog\nthe cat ate the rat\n"


def zipf_corpus(path: Path, sentences: int = 1500, seed: int = 0) -> Path:
    """Random sentences over a Zipf-distributed vocabulary with some word-pair structure."""
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(150)]
    weights = 1 / np.arange(1, len(vocab) + 1)
    weights /= weights.sum()
    lines = []
    for _ in range(sentences):
        words = list(rng.choice(vocab, size=int(rng.integers(1, 12)), p=weights))
        for i in range(1, len(words)):
            if rng.random() < 0.3:
                words[i] = f"x{words[i - 1]}"  # a word that tends to follow another
        lines.append(" ".join(words))
    path.write_text("\n".join(lines) + "\n")
    return path


# -- the LM builder -------------------------------------------------------------------------


@pytest.mark.parametrize("order", [1, 2, 3])
def test_arpa_probabilities_sum_to_one_in_every_context(tmp_path, order):
    (tmp_path / "toy.txt").write_text(TOY)
    build_lm(tmp_path / "toy.txt", tmp_path / "toy.arpa", order)
    lm = read_arpa(tmp_path / "toy.arpa")
    words = [g[0] for g in lm.probs[0] if g[0] != BOS]
    contexts = {g[:-1] for table in lm.probs for g in table} | {("the", "zebra"), ("zebra",)}
    for context in contexts:
        if context and context[-1] == "</s>":
            continue
        total = sum(10 ** lm.log10_prob(w, context) for w in words)
        assert total == pytest.approx(1, abs=2e-6), context


def test_vocab_words_join_the_unigrams_with_the_uniform_share(tmp_path):
    (tmp_path / "toy.txt").write_text(TOY)
    (tmp_path / "words.txt").write_text("zebra\ncat\n\nyak gnu\n")
    stats = build_lm(tmp_path / "toy.txt", tmp_path / "toy.arpa", 2, vocab_path=tmp_path / "words.txt")
    assert stats.ngrams[0] == 14 + 3  # zebra, yak, gnu; cat is in the text already
    lm = read_arpa(tmp_path / "toy.arpa")
    words = [g[0] for g in lm.probs[0] if g[0] != BOS]
    assert lm.probs[0][("zebra",)] == lm.probs[0][("gnu",)] == lm.probs[0][("<unk>",)]
    assert lm.probs[0][("zebra",)] < min(lm.probs[0][(w,)] for w in TOY.split())
    for context in [(), ("the",), ("zebra",), ("<s>",)]:
        assert sum(10 ** lm.log10_prob(w, context) for w in words) == pytest.approx(1, abs=2e-6), context
    # The text's own n-grams keep their order: without the list the toy bigram is unchanged in kind
    assert ("the", "cat") in lm.probs[1] and ("the", "zebra") not in lm.probs[1]
    (tmp_path / "blank.txt").write_text("\n")
    with pytest.raises(W2VError, match="word list is empty"):
        build_lm(tmp_path / "toy.txt", tmp_path / "x.arpa", 2, vocab_path=tmp_path / "blank.txt")


def test_known_probabilities_of_a_toy_corpus(tmp_path):
    """Values KenLM's `lmplz -o 3 --discount_fallback` writes for the same four sentences."""
    (tmp_path / "toy.txt").write_text(TOY)
    stats = build_lm(tmp_path / "toy.txt", tmp_path / "toy.arpa", 3)
    assert stats.fallback_orders == [2, 3] and stats.ngrams == [14, 21, 20]
    lm = read_arpa(tmp_path / "toy.arpa")
    assert lm.probs[0][("the",)] == pytest.approx(-0.9028628, abs=1e-6)
    assert lm.probs[0][("<unk>",)] == pytest.approx(-1.3621826, abs=1e-6)
    assert lm.probs[1][("<s>", "the")] == pytest.approx(-0.35898948, abs=1e-6)
    assert lm.backoffs[1][("<s>", "the")] == pytest.approx(-0.30103, abs=1e-6)
    assert lm.probs[2][("<s>", "the", "cat")] == pytest.approx(-0.40009722, abs=1e-6)


def find_lmplz():
    return shutil.which("lmplz") or next((str(p) for p in [Path(sys.executable).parent / "lmplz"] if p.exists()), None)


@pytest.mark.parametrize("order", [3, 4])
def test_same_probabilities_as_kenlm_lmplz(tmp_path, order):
    lmplz = find_lmplz()
    if lmplz is None:
        pytest.skip("lmplz not built (scripts/install_lm.sh --lmplz)")
    corpus = zipf_corpus(tmp_path / "c.txt")
    with open(corpus) as f, open(tmp_path / "ref.arpa", "w") as out:
        subprocess.run([lmplz, "-o", str(order), "-S", "100M", "--discount_fallback", "-T", str(tmp_path)],
                       stdin=f, stdout=out, stderr=subprocess.DEVNULL, check=True)
    build_lm(corpus, tmp_path / "ours.arpa", order)
    ours, ref = read_arpa(tmp_path / "ours.arpa"), read_arpa(tmp_path / "ref.arpa")
    for n in range(order):
        assert set(ours.probs[n]) == set(ref.probs[n])
        for gram, logp in ref.probs[n].items():
            if gram != (BOS,):
                assert ours.probs[n][gram] == pytest.approx(logp, abs=5e-6), gram
            assert ours.backoffs[n].get(gram, 0.0) == pytest.approx(ref.backoffs[n].get(gram, 0.0), abs=5e-6)


def test_kenlm_reads_the_arpa_and_scores_as_we_do(tmp_path):
    kenlm = pytest.importorskip("kenlm")
    corpus = zipf_corpus(tmp_path / "c.txt", sentences=300)
    build_lm(corpus, tmp_path / "lm.arpa", 3)
    ours = read_arpa(tmp_path / "lm.arpa")
    model = kenlm.Model(str(tmp_path / "lm.arpa"))
    for sentence in ["w0 w1 xw1", "w3 unseen w0", "w2"]:
        words = sentence.split()
        expected = sum(ours.log10_prob(w, tuple([BOS, *words][max(0, i - 1):i + 1]))
                       for i, w in enumerate([*words, "</s>"]))
        assert model.score(sentence) == pytest.approx(expected, abs=1e-4)


def test_cli_build_lm(tmp_path):
    (tmp_path / "toy.txt").write_text(TOY)
    result = CliRunner().invoke(cli, ["build-lm", str(tmp_path / "toy.txt"), "-o", str(tmp_path / "lm.arpa"),
                                      "--order", "2", "--case", "upper", "-q"])
    assert result.exit_code == 0, result.output
    assert "4 sentences, 22 words; 1-grams 14, 2-grams 21" in result.stdout
    assert "\tTHE CAT\n" in (tmp_path / "lm.arpa").read_text()
    (tmp_path / "words.txt").write_text("zebra\nCat\n")
    result = CliRunner().invoke(cli, ["build-lm", str(tmp_path / "toy.txt"), "-o", str(tmp_path / "lm.arpa"),
                                      "--order", "2", "--case", "upper", "--vocab", str(tmp_path / "words.txt"), "-q"])
    assert result.exit_code == 0 and "1-grams 15, 2-grams 21" in result.stdout, result.output
    assert "\tZEBRA\n" in (tmp_path / "lm.arpa").read_text()
    (tmp_path / "empty.txt").write_text("\n\n")
    result = CliRunner().invoke(cli, ["build-lm", str(tmp_path / "empty.txt"), "-o", str(tmp_path / "x.arpa")])
    assert result.exit_code == 1 and "no text to build a language model from" in result.output
    result = CliRunner().invoke(cli, ["build-lm", str(tmp_path / "missing.txt"), "-o", str(tmp_path / "x.arpa")])
    assert result.exit_code == 2 and "does not exist" in result.output


# -- beam search ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return make_processor(tmp_path_factory.mktemp("proc")).tokenizer


def emissions(tokenizer, frames: list[dict[str, float]]) -> np.ndarray:
    """log-probs (frames, vocab): per frame, the given token probabilities; the rest of the
    mass spread over the other tokens; an empty dict is a confident blank."""
    vocab = tokenizer.get_vocab()
    out = np.full((len(frames), len(vocab)), 1e-4)
    for t, probs in enumerate(frames):
        probs = probs or {"<pad>": 0.99}
        for token, p in probs.items():
            out[t, vocab[token]] = p
    out /= out.sum(-1, keepdims=True)
    return np.log(out)


def spell(word: str) -> list[dict[str, float]]:
    frames = []
    for ch in word:
        frames += [{ch: 0.95}, {}]
    return frames


# "THE" then a word heard as KAT (0.55) or CAT (0.45): greedy says KAT.
AMBIGUOUS = spell("THE") + [{"|": 0.95}] + [{"K": 0.55, "C": 0.45}, {}] + spell("AT")


def test_beam_without_lm_matches_greedy_and_gives_word_frames(tokenizer):
    pytest.importorskip("pyctcdecode")
    from w2v_cli.decoding import BeamDecoder, BeamOptions

    log_probs = emissions(tokenizer, AMBIGUOUS)
    greedy = tokenizer.decode(log_probs.argmax(-1).tolist())
    result = BeamDecoder(tokenizer, log_probs.shape[1], BeamOptions(beam_width=10)).decode(log_probs)
    assert result.text == greedy == "THE KAT"
    assert result.word_frames == [("THE", 0, 5), ("KAT", 7, 12)]  # end exclusive, as greedy_words


def test_lm_and_hotwords_resolve_an_ambiguous_word(tokenizer, tmp_path):
    pytest.importorskip("pyctcdecode")
    pytest.importorskip("kenlm")
    from w2v_cli.decoding import BeamDecoder, BeamOptions

    log_probs = emissions(tokenizer, AMBIGUOUS)
    vocab_size = log_probs.shape[1]
    (tmp_path / "lm.txt").write_text("THE CAT SAT\nTHE CAT ATE\nA CAT\nTHE DOG\n" * 3)
    build_lm(tmp_path / "lm.txt", tmp_path / "lm.arpa", 2)
    with_lm = BeamDecoder(tokenizer, vocab_size, BeamOptions(beam_width=20, lm_path=str(tmp_path / "lm.arpa")))
    assert with_lm.decode(log_probs).text == "THE CAT"
    hot = BeamDecoder(tokenizer, vocab_size, BeamOptions(beam_width=20, hotwords=["CAT"]))
    assert hot.decode(log_probs).text == "THE CAT"


def test_a_word_list_lets_the_beam_spell_a_word_the_lm_text_lacks(tokenizer, tmp_path):
    pytest.importorskip("pyctcdecode")
    pytest.importorskip("kenlm")
    from w2v_cli.decoding import BeamDecoder, BeamOptions

    # "THE" then CAB, heard clearly (0.97) over CAT (0.03); the LM text has CAT, never CAB
    log_probs = emissions(tokenizer, spell("THE") + [{"|": 0.95}] + spell("CA") + [{"B": 0.97, "T": 0.03}, {}])
    (tmp_path / "lm.txt").write_text("THE CAT SAT\nTHE CAT ATE\nA CAT\nTHE DOG\n" * 3)
    (tmp_path / "words.txt").write_text("CAB\nZEBRA\n")
    texts = {}
    for name, vocab in [("text only", None), ("with word list", tmp_path / "words.txt")]:
        build_lm(tmp_path / "lm.txt", tmp_path / f"{name}.arpa", 2, vocab_path=vocab)
        decoder = BeamDecoder(tokenizer, log_probs.shape[1], BeamOptions(beam_width=20, lm_path=str(tmp_path / f"{name}.arpa")))
        texts[name] = decoder.decode(log_probs).text
    assert texts == {"text only": "THE CAT", "with word list": "THE CAB"}


def test_token_min_logp_lets_the_lm_pick_a_character_the_frame_gave_little(tokenizer, tmp_path):
    pytest.importorskip("pyctcdecode")
    pytest.importorskip("kenlm")
    from w2v_cli.decoding import BeamDecoder, BeamOptions

    # "THE" then KAT, C at log-probability ~-5.8: below pyctcdecode's default threshold (-5),
    # above -8; the LM knows CAT, never KAT
    log_probs = emissions(tokenizer, spell("THE") + [{"|": 0.95}] + [{"K": 0.99, "C": 0.003}, {}] + spell("AT"))
    assert -8 < log_probs[7, tokenizer.get_vocab()["C"]] < -5
    (tmp_path / "lm.txt").write_text("THE CAT SAT\nTHE CAT ATE\nA CAT\nTHE DOG\n" * 3)
    build_lm(tmp_path / "lm.txt", tmp_path / "lm.arpa", 2)
    texts = {}
    for threshold in (None, -5.0, -8.0):
        options = BeamOptions(beam_width=20, lm_path=str(tmp_path / "lm.arpa"), token_min_logp=threshold)
        texts[threshold] = BeamDecoder(tokenizer, log_probs.shape[1], options).decode(log_probs).text
    assert texts == {None: "THE KAT", -5.0: "THE KAT", -8.0: "THE CAT"}


def test_pruning_thresholds_must_be_log_probabilities(tiny_ctc, tmp_path):
    from w2v_cli.config import load_config
    from w2v_cli.decoding import options_from_config
    from w2v_cli.errors import ConfigError

    decode = options_from_config(load_config(overrides=["decode.token_min_logp=-8", "decode.beam_prune_logp=-20"]).decode)
    assert (decode.beam.token_min_logp, decode.beam.beam_prune_logp) == (-8.0, -20.0)
    with pytest.raises(ConfigError, match="decode.token_min_logp is a natural-log probability threshold: 0 or below"):
        options_from_config(load_config(overrides=["decode.token_min_logp=5"]).decode)
    result = CliRunner().invoke(cli, ["transcribe", str(tmp_path / "a.wav"), "-m", str(tiny_ctc), "--beam-prune-logp", "1"])
    assert result.exit_code == 2 and "--beam-prune-logp" in result.stderr, result.output


def test_missing_pyctcdecode_names_the_install_step(tokenizer, monkeypatch):
    from w2v_cli.decoding import BeamDecoder, BeamOptions

    monkeypatch.setitem(sys.modules, "pyctcdecode", None)
    with pytest.raises(W2VError, match="make install-lm"):
        BeamDecoder(tokenizer, 32, BeamOptions())


def test_ctc_labels_map_blank_delimiter_and_unk(tokenizer):
    from w2v_cli.decoding import ctc_labels

    labels = ctc_labels(tokenizer, len(tokenizer.get_vocab()))
    assert labels[:5] == ["", "<s>", "</s>", "⁇", " "] and labels[5] == "A"


def test_cli_beam_with_lm_writes_times(tiny_ctc, tmp_path):
    pytest.importorskip("pyctcdecode")
    pytest.importorskip("kenlm")
    sf.write(tmp_path / "a.wav", synth_speechlike(1.5, seed=4), 16000)
    (tmp_path / "lm.txt").write_text("HELLO WORLD\nHELLO THERE\n")
    build_lm(tmp_path / "lm.txt", tmp_path / "lm.arpa", 2)
    result = CliRunner().invoke(cli, ["transcribe", str(tmp_path / "a.wav"), "-m", str(tiny_ctc), "-q",
                                      "--lm", str(tmp_path / "lm.arpa"), "--beam-width", "8",
                                      "-o", str(tmp_path / "out"), "-f", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "out" / "a.json").read_text())
    assert data["text"] == result.stdout.strip()
    words = [w for s in data["segments"] for w in s["words"]]
    assert " ".join(w["word"] for w in words) == " ".join(data["text"].split())
    assert all(0 <= w["start"] < w["end"] <= 1.5 + 0.004 and 0 < w["confidence"] <= 1 for w in words)


def test_cli_decoder_option_errors(tiny_ctc, tmp_path):
    sf.write(tmp_path / "a.wav", synth_speechlike(1.0), 16000)
    runner = CliRunner()
    result = runner.invoke(cli, ["transcribe", str(tmp_path / "a.wav"), "--decoder", "greedy", "--hotwords", "ACME"])
    assert result.exit_code == 2 and "--lm and --hotwords need --decoder beam" in result.output
    result = runner.invoke(cli, ["transcribe", str(tmp_path / "a.wav"), "--lm", str(tmp_path / "none.arpa")])
    assert result.exit_code == 2 and "is not a file" in result.output


def test_resumed_batch_redoes_inputs_when_the_decoder_changes(tiny_ctc, tmp_path):
    pytest.importorskip("pyctcdecode")
    sf.write(tmp_path / "a.wav", synth_speechlike(1.0, seed=5), 16000)
    args = ["transcribe", str(tmp_path / "a.wav"), "-m", str(tiny_ctc), "-o", str(tmp_path / "out")]
    runner = CliRunner()
    assert runner.invoke(cli, args).exit_code == 0
    assert "skipping 1 of 1" in runner.invoke(cli, args).stderr
    beam = runner.invoke(cli, [*args, "--decoder", "beam", "--beam-width", "4"])
    assert beam.exit_code == 0 and "skipping" not in beam.stderr
    assert "skipping 1 of 1" in runner.invoke(cli, [*args, "--decoder", "beam", "--beam-width", "4"]).stderr


# -- an LM that comes with the model (language_model/, as Wav2Vec2ProcessorWithLM) ------------


def model_with_lm(tiny_ctc: Path, tmp_path: Path, gzipped: bool = True, attrs: dict | None = None) -> Path:
    import gzip

    folder = tmp_path / "model-with-lm"
    shutil.copytree(tiny_ctc, folder)
    (folder / "language_model").mkdir()
    (tmp_path / "lm.txt").write_text("HELLO WORLD\nHELLO THERE\nA WORLD\n")
    build_lm(tmp_path / "lm.txt", tmp_path / "lm.arpa", 2)
    if gzipped:
        with open(tmp_path / "lm.arpa", "rb") as src, gzip.open(folder / "language_model" / "lm.arpa.gz", "wb") as dst:
            dst.write(src.read())
    else:
        shutil.copy(tmp_path / "lm.arpa", folder / "language_model" / "lm.arpa")
    if attrs is not None:
        (folder / "language_model" / "attrs.json").write_text(json.dumps(attrs))
    return folder


def test_bundled_lm_is_the_default_decoder_unless_greedy_or_none_is_asked(tiny_ctc, tmp_path, monkeypatch, caplog):
    from w2v_cli.decoding import BeamOptions, DecodeOptions, resolve

    folder = model_with_lm(tiny_ctc, tmp_path, attrs={"alpha": 0.7, "beta": 2.0})
    lm = str(folder / "language_model" / "lm.arpa.gz")
    monkeypatch.setattr("w2v_cli.decoding.beam_search_available", lambda: True)
    auto = resolve(DecodeOptions("auto"), str(folder))
    assert (auto.decoder, auto.beam.lm_path, auto.beam.alpha, auto.beam.beta) == ("beam", lm, 0.7, 2.0)
    assert (auto.beam.unk_score_offset, auto.beam.score_boundary) == (-10.0, True)  # pyctcdecode's defaults
    # the other two attributes pyctcdecode saves in attrs.json are read too, for this LM only
    (folder / "language_model" / "attrs.json").write_text(json.dumps(
        {"alpha": 0.7, "beta": 2.0, "unk_score_offset": -4.5, "score_boundary": False}))
    auto = resolve(DecodeOptions("auto"), str(folder))
    assert (auto.beam.unk_score_offset, auto.beam.score_boundary) == (-4.5, False)
    other_lm = resolve(DecodeOptions("beam", BeamOptions(lm_path=str(tmp_path / "lm.arpa"))), str(folder)).beam
    assert (other_lm.unk_score_offset, other_lm.score_boundary) == (-10.0, True)
    if importlib.util.find_spec("pyctcdecode") and importlib.util.find_spec("kenlm"):
        from w2v_cli.decoding import BeamDecoder
        from w2v_cli.models import load_ctc_model

        tokenizer = load_ctc_model(str(folder), device="cpu").processor.tokenizer
        language_model = BeamDecoder(tokenizer, len(tokenizer), auto.beam).decoder._language_model
        assert (language_model.unk_score_offset, language_model.score_boundary) == (-4.5, False)
    (folder / "language_model" / "attrs.json").write_text(json.dumps({"alpha": "high"}))
    with pytest.raises(W2VError, match="attrs.json: a value is not a number"):
        resolve(DecodeOptions("auto"), str(folder))
    # the pruning thresholds: the model's attrs.json for its own LM, a flag over it, pyctcdecode's otherwise
    (folder / "language_model" / "attrs.json").write_text(json.dumps({"alpha": 0.7, "beta": 2.0, "token_min_logp": -8}))
    auto = resolve(DecodeOptions("auto"), str(folder)).beam
    assert (auto.token_min_logp, auto.beam_prune_logp) == (-8.0, -10.0)
    assert resolve(DecodeOptions("auto", BeamOptions(token_min_logp=-6.0)), str(folder)).beam.token_min_logp == -6.0
    assert (other_lm.token_min_logp, other_lm.beam_prune_logp) == (-5.0, -10.0)
    assert resolve(DecodeOptions("beam", BeamOptions(lm_path=str(tmp_path / "lm.arpa"))), str(folder)).beam.token_min_logp == -5.0
    (folder / "language_model" / "attrs.json").write_text(json.dumps({"token_min_logp": 3}))
    with pytest.raises(W2VError, match="token_min_logp is a log-probability threshold and must be 0 or below"):
        resolve(DecodeOptions("auto"), str(folder))
    (folder / "language_model" / "attrs.json").write_text(json.dumps({"alpha": 0.7, "beta": 2.0}))
    assert resolve(DecodeOptions("beam", BeamOptions(alpha=0.1)), str(folder)).beam.alpha == 0.1  # a flag wins
    assert resolve(DecodeOptions("auto", BeamOptions(bundled_lm=False)), str(folder)).decoder == "greedy"  # --lm none
    assert resolve(DecodeOptions("beam", BeamOptions(bundled_lm=False)), str(folder)).beam.lm_path is None
    assert resolve(DecodeOptions("greedy"), str(folder)).decoder == "greedy"
    assert resolve(DecodeOptions("auto"), str(tiny_ctc)).decoder == "greedy"  # a model without an LM
    other = tmp_path / "other.arpa"
    shutil.copy(tmp_path / "lm.arpa", other)
    assert resolve(DecodeOptions("beam", BeamOptions(lm_path=str(other))), str(folder)).beam.lm_path == str(other)
    # without pyctcdecode/kenlm, "auto" falls back to greedy with one warning naming the fix
    monkeypatch.setattr("w2v_cli.decoding.beam_search_available", lambda: False)
    with caplog.at_level("WARNING", logger="w2v"):
        assert resolve(DecodeOptions("auto"), str(folder)).decoder == "greedy"
    assert "make install-lm" in caplog.text and "lm.arpa.gz" in caplog.text
    # two LM files: which one is meant is unclear, so it is an error that says what to do
    shutil.copy(tmp_path / "lm.arpa", folder / "language_model" / "second.arpa")
    with pytest.raises(W2VError, match="keep one, or pass --lm"):
        resolve(DecodeOptions("auto"), str(folder))


def test_cli_decodes_with_the_models_own_lm(tiny_ctc, tmp_path):
    """`transcribe` with no decoding flags on a model folder that brings an LM gives what
    `--lm <that file>` gives; `--lm none` and `--decoder greedy` give the greedy transcript;
    `eval` reports the LM it used."""
    pytest.importorskip("pyctcdecode")
    pytest.importorskip("kenlm")
    folder = model_with_lm(tiny_ctc, tmp_path, gzipped=True)
    audio = tmp_path / "a.wav"
    sf.write(audio, synth_speechlike(2.0, seed=6), 16000)
    runner = CliRunner()

    def run(*extra: str) -> str:
        result = runner.invoke(cli, ["transcribe", str(audio), "-m", str(folder), "-q", "--beam-width", "8", *extra])
        assert result.exit_code == 0, result.output
        return result.stdout

    bundled = run()
    assert bundled == run("--lm", str(folder / "language_model" / "lm.arpa.gz"))
    greedy = run("--decoder", "greedy")
    assert run("--lm", "none") == greedy
    # the LM's words only: the random model's letters are pulled onto HELLO/WORLD/THERE/A
    assert set(bundled.split()) <= {"HELLO", "WORLD", "THERE", "A"}
    (tmp_path / "data.tsv").write_text(f"id\tpath\ttext\na\t{audio}\tHELLO WORLD\n")
    result = runner.invoke(cli, ["eval", "--dataset", str(tmp_path / "data.tsv"), "-m", str(folder),
                                 "-o", str(tmp_path / "ev"), "-q", "--beam-width", "8"])
    assert result.exit_code == 0, result.output
    assert "lm.arpa.gz (alpha 0.5, beta 1.5)" in json.loads((tmp_path / "ev" / "summary.json").read_text())["decoder"]


def test_decoding_comes_from_the_config_and_flags_override_it(tiny_ctc, tmp_path):
    """The `decode` section of --config / --set drives transcribe and eval; flags win."""
    pytest.importorskip("pyctcdecode")
    pytest.importorskip("kenlm")
    folder = model_with_lm(tiny_ctc, tmp_path)
    audio = tmp_path / "a.wav"
    sf.write(audio, synth_speechlike(2.0, seed=6), 16000)
    runner = CliRunner()

    def run(*extra: str) -> str:
        result = runner.invoke(cli, ["transcribe", str(audio), "-m", str(folder), "-q", *extra])
        assert result.exit_code == 0, result.output
        return result.stdout

    greedy = run("--decoder", "greedy")
    (tmp_path / "greedy.yaml").write_text("decode:\n  decoder: greedy\n")
    assert run("--config", str(tmp_path / "greedy.yaml")) == greedy
    assert run("--set", "decode.lm=none") == greedy
    assert run("--set", "decode.beam_width=8") == run("--beam-width", "8")  # the model's own LM, either way
    assert run("--config", str(tmp_path / "greedy.yaml"), "--decoder", "beam", "--beam-width", "8") == \
        run("--beam-width", "8")  # a flag beats the file
    (tmp_path / "bad.yaml").write_text("decode:\n  decoder: greedy\n  hotwords: ACME\n")
    result = runner.invoke(cli, ["transcribe", str(audio), "-m", str(folder), "--config", str(tmp_path / "bad.yaml")])
    assert result.exit_code == 1 and "decode.hotwords need decode.decoder beam" in result.output
    result = runner.invoke(cli, ["transcribe", str(audio), "-m", str(folder), "--set", "decode.lm=missing.arpa"])
    assert result.exit_code == 1 and "decode.lm: missing.arpa is not a file" in result.output


# -- the LM of a hub model with Wav2Vec2ProcessorWithLM (e.g. *-with-lm repos) -----------------


def fake_hub_model(cache: Path, repo: str, processor_class: str, lm_text: str | None) -> Path:
    """A model in a Hugging Face cache layout (refs/main -> snapshots/<commit>/), as the hub
    client leaves it; with language_model/ holding an ARPA and attrs.json when lm_text is given."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = cache / ("models--" + repo.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "preprocessor_config.json").write_text(json.dumps(
        {"feature_extractor_type": "Wav2Vec2FeatureExtractor", "processor_class": processor_class}))
    if lm_text is not None:
        (snapshot / "language_model").mkdir()
        (cache / "lm.txt").write_text(lm_text)
        build_lm(cache / "lm.txt", snapshot / "language_model" / "4gram.arpa", 2)
        (snapshot / "language_model" / "attrs.json").write_text(json.dumps(
            {"alpha": 0.8, "beta": 1.2, "unk_score_offset": -10.0, "score_boundary": True}))
    return snapshot


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    from w2v_cli.models import hub_language_model_dir

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    hub_language_model_dir.cache_clear()
    yield cache
    hub_language_model_dir.cache_clear()


def test_a_hub_models_cached_lm_is_used_like_a_folders(hub_cache, monkeypatch, caplog):
    from w2v_cli.decoding import DecodeOptions, bundled_lm, resolve

    snapshot = fake_hub_model(hub_cache, "org/with-lm", "Wav2Vec2ProcessorWithLM", "HELLO WORLD\n")
    fake_hub_model(hub_cache, "org/plain", "Wav2Vec2Processor", None)

    def no_network(*args, **kwargs):
        raise AssertionError("no network for a model whose LM is cached or that has none")

    monkeypatch.setattr("w2v_cli.models.hub_reachable", no_network)
    monkeypatch.setattr("w2v_cli.decoding.beam_search_available", lambda: True)
    lm = bundled_lm("org/with-lm")
    assert lm is not None and (lm.path, lm.alpha, lm.beta) == (snapshot / "language_model" / "4gram.arpa", 0.8, 1.2)
    settled = resolve(DecodeOptions("auto"), "org/with-lm")
    assert (settled.decoder, settled.beam.lm_path) == ("beam", str(lm.path))
    assert bundled_lm("org/plain") is None and resolve(DecodeOptions("auto"), "org/plain").decoder == "greedy"
    assert bundled_lm("org/not-cached") is None
    assert "on the hub" not in caplog.text  # nothing to warn about


def test_a_hub_models_lm_missing_from_the_cache_is_fetched_or_named(hub_cache, monkeypatch, caplog):
    import huggingface_hub

    from w2v_cli.decoding import bundled_lm
    from w2v_cli.models import hub_language_model_dir

    snapshot = fake_hub_model(hub_cache, "org/with-lm", "Wav2Vec2ProcessorWithLM", None)
    # offline (the tests' default): decoded without it, one warning naming why and --lm
    with caplog.at_level("WARNING", logger="w2v"):
        assert bundled_lm("org/with-lm") is None
        assert bundled_lm("org/with-lm") is None
    assert caplog.text.count("comes with an n-gram LM on the hub") == 1
    assert "HF_HUB_OFFLINE is set" in caplog.text and "--lm FILE" in caplog.text
    # online: only language_model/ is downloaded, into the same snapshot
    hub_language_model_dir.cache_clear()
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr("w2v_cli.models.hub_reachable", lambda *a, **k: True)
    asked = []

    def fake_download(repo_id, revision=None, allow_patterns=None):
        asked.append((repo_id, allow_patterns))
        (snapshot / "language_model").mkdir()
        (hub_cache / "lm.txt").write_text("HELLO WORLD\n")
        build_lm(hub_cache / "lm.txt", snapshot / "language_model" / "4gram.arpa", 2)
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    lm = bundled_lm("org/with-lm")
    assert asked == [("org/with-lm", ["language_model/*"])]
    assert lm is not None and lm.path == snapshot / "language_model" / "4gram.arpa" and lm.alpha == 0.5


def test_tune_lm_grids_the_threshold_and_writes_the_best_point_as_attrs(tiny_ctc, speech_manifest, tmp_path):
    pytest.importorskip("pyctcdecode")
    pytest.importorskip("kenlm")
    manifest = speech_manifest(tmp_path / "dev.tsv", ("LJ001-0002", "cmu_arctic_us_axb_a0005"))
    (tmp_path / "lm.txt").write_text("IN BEING COMPARATIVELY MODERN\nHELLO WORLD\n")
    build_lm(tmp_path / "lm.txt", tmp_path / "lm.arpa", 2)
    script = Path(__file__).resolve().parents[1] / "scripts" / "tune_lm.py"
    run = subprocess.run([sys.executable, str(script), "--model", str(tiny_ctc), "--lm", str(tmp_path / "lm.arpa"),
                          "--dataset", str(manifest), "--alpha", "0.5,1", "--beta", "0", "--token-min-logp", "-5,-8",
                          "--jobs", "1", "--json", str(tmp_path / "grid.json"), "--attrs", str(tmp_path / "attrs.json")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    grid = json.loads((tmp_path / "grid.json").read_text())["grid"]
    assert sorted((g["alpha"], g["token_min_logp"]) for g in grid) == [(0.5, -8), (0.5, -5), (1, -8), (1, -5)]
    best = min(grid, key=lambda g: (g["wer"], g["cer"]))
    attrs = json.loads((tmp_path / "attrs.json").read_text())
    assert attrs == {key: best[key] for key in ("alpha", "beta", "token_min_logp")}
    assert "token_min_logp" in run.stdout.splitlines()[0]  # the table's header
    # (the space form above is glued to --token-min-logp=-5,-8: argparse alone takes -5,-8 for an option)
    bad = subprocess.run([sys.executable, str(script), "--model", str(tiny_ctc), "--lm", str(tmp_path / "lm.arpa"),
                          "--dataset", str(manifest), "--token-min-logp", "3"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--token-min-logp: log-probabilities are 0 or below" in bad.stderr


# -- export: the transformers / pyctcdecode layout -------------------------------------------


@pytest.mark.parametrize("loader", ["pyctcdecode", "transformers"])
def test_export_writes_what_transformers_and_pyctcdecode_load_and_decodes_as_w2v_does(tiny_ctc, tmp_path, loader, load_exported):
    """`w2v export` of a folder whose LM is a gzipped ARPA with w2v's pruning keys in attrs.json
    (both beyond what pyctcdecode's load_from_dir takes): the export loads with pyctcdecode and
    Wav2Vec2ProcessorWithLM, and decoding its logits with the printed arguments gives w2v's
    transcript of the original folder. The card and the LM's notice go along."""
    pytest.importorskip("pyctcdecode")
    pytest.importorskip("kenlm")
    import torch
    from pyctcdecode import BeamSearchDecoderCTC
    from transformers import AutoModelForCTC

    folder = model_with_lm(tiny_ctc, tmp_path, attrs={"alpha": 0.7, "beta": 2.0, "token_min_logp": -8.0})
    (folder / "README.md").write_text("# card\n")
    (folder / "language_model" / "WORDLIST-COPYRIGHT").write_text("word list notice\n")
    out = tmp_path / "exported"
    runner = CliRunner()
    result = runner.invoke(cli, ["export", str(folder), str(out)])
    assert result.exit_code == 0, result.output
    assert "token_min_logp=-8, beam_prune_logp=-10" in result.stdout
    lm_dir = out / "language_model"
    assert json.loads((lm_dir / "attrs.json").read_text()) == {
        "alpha": 0.7, "beta": 2.0, "unk_score_offset": -10.0, "score_boundary": True}
    assert (lm_dir / "lm.arpa").read_bytes() == (tmp_path / "lm.arpa").read_bytes()  # uncompressed
    assert (lm_dir / "unigrams.txt").read_text().split() == ["A", "HELLO", "THERE", "WORLD"]
    assert (out / "README.md").is_file() and (out / "WORDLIST-COPYRIGHT").is_file()
    assert "local_files_only" not in json.loads((out / "tokenizer_config.json").read_text())
    assert BeamSearchDecoderCTC.load_from_dir(str(out)) is not None  # pyctcdecode itself

    audio = tmp_path / "a.wav"
    samples = synth_speechlike(2.0, seed=6)
    sf.write(audio, samples, 16000)
    w2v_text = runner.invoke(cli, ["transcribe", str(audio), "-m", str(folder), "-q", "--beam-width", "8", "--dtype", "fp32"]).stdout
    processor, decode = load_exported(out, loader)
    model = AutoModelForCTC.from_pretrained(str(out)).eval()
    inputs = processor(samples, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        logits = model(inputs.input_values).logits
    decoded = decode(logits.numpy(), beam_width=8, token_min_logp=-8, beam_prune_logp=-10)
    assert w2v_text.split() and set(w2v_text.split()) <= {"HELLO", "WORLD", "THERE", "A"}  # the LM at work
    assert decoded == [w2v_text.strip()]

    # an existing folder is replaced only when asked; without an LM, no LM files
    again = runner.invoke(cli, ["export", str(folder), str(out), "--lm", "none"])
    assert again.exit_code != 0 and "--overwrite" in again.output
    assert (lm_dir / "lm.arpa").is_file()  # untouched
    again = runner.invoke(cli, ["export", str(folder), str(out), "--lm", "none", "--overwrite"])
    assert again.exit_code == 0 and "no language model" in again.stdout
    assert not (out / "language_model").exists() and (out / "model.safetensors").is_file()
    assert not list(tmp_path.glob(".tmp-*")) and not list(tmp_path.glob(".lm-*"))
