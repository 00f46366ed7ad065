"""scripts/make_synth_corpus.py's sentence planning (synthesis itself needs espeak-ng and
hibari-tts, which the test machine may lack; scripts/train_demo.sh runs it)."""

import pytest


def test_long_sentences_split_into_train_pieces_without_touching_the_heldout_split(tmp_path, load_script):
    m = load_script("make_synth_corpus")
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


def test_extra_text_joins_train_only_and_leaves_the_text_files_jobs_as_they_were(tmp_path, load_script):
    m = load_script("make_synth_corpus")
    train = [m.Sentence(f"s{i}", f"TRAIN SENTENCE {chr(65 + i)}") for i in range(6)]
    heldout = [m.Sentence("h0", "A HELD OUT ONE"), m.Sentence("h1", "ANOTHER HELD OUT ONE")]
    rows = ["id\ttext", "wordnet-n-1-0\tSHE WAS ABLE TO GO", "wordnet-n-1-1\tA HELD OUT ONE",
            "wordnet-n-2-0\tTRAIN SENTENCE A", "wordnet-n-3-0\tnot upper case", "s1\tSAME ID AS TRAIN",
            "wordnet-n-4-0\tWE WERE AT LAST ABLE", "wordnet-n-4-1\tSHE WAS ABLE TO GO"]
    (tmp_path / "extra.tsv").write_text("\n".join(rows) + "\n")
    extra = m.load_extra(tmp_path / "extra.tsv", train, heldout, seed=0)
    # held-out text, a train text, a repeated text, a known id and a malformed row are left out
    assert sorted(s.id for s in extra) == ["wordnet-n-1-0", "wordnet-n-4-0"]
    assert m.load_extra(tmp_path / "extra.tsv", train, heldout, seed=0) == extra  # deterministic

    jobs, held_jobs = m.plan_jobs(train, heldout, ("hibari", "espeak"), 2, seed=0)
    extra_jobs = m.plan_jobs(extra, [], ("hibari", "espeak"), 1, seed=0)[0]
    assert [j.split for j in extra_jobs] == ["train", "train"]
    assert {j.sentence.id for j in extra_jobs} == {"wordnet-n-1-0", "wordnet-n-4-0"}
    # main() appends the extra jobs; the text file's own plan does not depend on them
    assert m.plan_jobs(train, heldout, ("hibari", "espeak"), 2, seed=0) == (jobs, held_jobs)

    (tmp_path / "bad.tsv").write_text("key\tsentence\nx\tY\n")
    with pytest.raises(SystemExit, match="needs the columns id and text"):
        m.load_extra(tmp_path / "bad.tsv", train, heldout, seed=0)
    with pytest.raises(SystemExit, match="no such file"):
        m.load_extra(tmp_path / "missing.tsv", train, heldout, seed=0)


def test_wordnet_examples_are_normalized_to_the_corpus_alphabet(tmp_path, load_script):
    w = load_script("wordnet_text")
    assert w.normalize("he said 'don't go', twice!") == "HE SAID DON'T GO TWICE"
    assert w.normalize("born in 1950") is None
    header = "  1 This software and database is being provided to you, the LICENSEE\n"
    data = ('00001740 00 a 01 able 0 005 | (usually followed by `to\') having the necessary means; '
            '"she was able to program her computer"; "we were at last able to buy a car"; "able to go"\n')
    for name in w.POS_FILES.values():
        (tmp_path / name).write_text(header + (data if name == "data.adj" else ""))
    w.main(["--wordnet-dir", str(tmp_path), "--out", str(tmp_path / "out.tsv")])
    assert (tmp_path / "out.tsv").read_text().splitlines() == [
        "id\ttext", "wordnet-a-00001740-0\tSHE WAS ABLE TO PROGRAM HER COMPUTER",
        "wordnet-a-00001740-1\tWE WERE AT LAST ABLE TO BUY A CAR"]  # "able to go": under 4 words
    # definitions (the development set's text): the gloss before ';', parentheses removed
    w.main(["--wordnet-dir", str(tmp_path), "--what", "glosses", "--min-words", "3",
            "--out", str(tmp_path / "glosses.tsv")])
    assert (tmp_path / "glosses.tsv").read_text().splitlines() == [
        "id\ttext", "wordnet-gloss-a-00001740\tHAVING THE NECESSARY MEANS"]
    (tmp_path / "data.noun").unlink()
    with pytest.raises(SystemExit, match="wordnet-base"):
        w.main(["--wordnet-dir", str(tmp_path), "--out", str(tmp_path / "x.tsv")])
