"""scripts/make_synth_corpus.py's sentence planning (synthesis itself needs espeak-ng and
hibari-tts, which the test machine may lack; scripts/train_demo.sh runs it)."""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("make_synth_corpus", ROOT / "scripts" / "make_synth_corpus.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_synth_corpus"] = module  # dataclasses look the module up by name
    spec.loader.exec_module(module)
    return module


def test_long_sentences_split_into_train_pieces_without_touching_the_heldout_split(tmp_path):
    m = load_script()
    def name(i):  # letters only, as the text file's transcripts: AA, AB, ...
        return chr(65 + i // 26) + chr(65 + i % 26)

    words = [f"W{name(i)}" for i in range(75)]
    rows = ["id\tsubset\ttext"] + [f"s{i}\tx\tSHORT SENTENCE NUMBER {name(i)}" for i in range(60)]
    rows += ["long1\tx\t" + " ".join(words[:31]), "long2\tx\t" + " ".join(words), "gone\tx\tEXCLUDED ONE"]
    (tmp_path / "text.tsv").write_text("\n".join(rows) + "\n")
    (tmp_path / "exclude.tsv").write_text("id\tpath\ttext\ngone\ta.flac\tEXCLUDED ONE\n")

    long_out = []
    short = m.load_sentences(tmp_path / "text.tsv", tmp_path / "exclude.tsv", 30, long_out)
    assert len(short) == 60 and [s.id for s in long_out] == ["long1", "long2"]
    pieces = m.split_long(long_out, 30)
    # 31 words -> 16 + 15; 75 words -> 25 + 25 + 25: the fewest pieces, as equal as possible
    assert [(p.id, p.words) for p in pieces] == [("long1_p1", 16), ("long1_p2", 15), ("long2_p1", 25),
                                                 ("long2_p2", 25), ("long2_p3", 25)]
    assert " ".join(p.text for p in pieces[2:]) == " ".join(words)  # nothing lost or repeated

    train, heldout = m.split_sentences(short, 0.1, seed=0, min_heldout=5)
    merged = m.add_train_pieces(train, heldout, pieces, seed=0)
    assert sorted(s.id for s in merged) == sorted([s.id for s in train] + [p.id for p in pieces])
    assert m.add_train_pieces(train, heldout, pieces, seed=0) == merged  # deterministic
    assert not {s.text for s in merged} & {s.text for s in heldout}
    # a piece that happens to read exactly like a held-out sentence stays out of train
    clash = m.Sentence("long9_p1", heldout[0].text)
    assert clash not in m.add_train_pieces(train, heldout, [clash], seed=0)
