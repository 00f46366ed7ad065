"""scripts/package_demo.py's account of a run's training time: the stops that
scripts/pause_training.sh logged are taken off only where they fall inside the run."""

import json


def test_only_stops_inside_the_runs_lifetime_are_taken_off_its_time(tmp_path, load_script):
    m = load_script("package_demo")
    (tmp_path / "run").mkdir()
    # an earlier run's stop (deleted and restarted since), one inside, one straddling the last save
    (tmp_path / "run.pauses").write_text("500 600 100 pytest -q\n\n1100 1200 100 eval\n1950 2050 100 w2v eval x\n")
    state = {"step": 10, "elapsed_s": 900.0, "started_at": 1000.0, "updated_at": 2000.0}
    (tmp_path / "run" / "trainer_state.json").write_text(json.dumps(state))
    got = m.run_state(tmp_path, "run")
    assert got["paused_s"] == 150 and got["elapsed_s"] == 750.0

    # a state from before started_at/updated_at existed: every logged stop counts
    del state["started_at"], state["updated_at"]
    (tmp_path / "run" / "trainer_state.json").write_text(json.dumps(state))
    got = m.run_state(tmp_path, "run")
    assert got["paused_s"] == 300 and got["elapsed_s"] == 600.0
    assert "not counting 5 min" in m.steps_line(got)

    (tmp_path / "run.pauses").unlink()  # no log: the state as it is
    assert m.run_state(tmp_path, "run") == state


def write_eval(folder, errors, words=10):
    """A `w2v eval --output-dir` folder: one utterance per entry of `errors` (word substitutions
    out of `words`), its summary.json with the corpus WER."""
    folder.mkdir(parents=True)
    lines = [json.dumps({"id": f"u{i}", "reference": "a " * words, "hypothesis": "-", "duration_s": 1.0,
                         "wer": e / words, "cer": e / words, "substitutions": e, "deletions": 0, "insertions": 0,
                         "hits": words - e, "char_errors": e, "reference_chars": words}) for i, e in enumerate(errors)]
    (folder / "utterances.jsonl").write_text("\n".join(lines) + "\n")
    wer = sum(errors) / (words * len(errors))
    (folder / "summary.json").write_text(json.dumps({"wer": wer, "cer": wer / 3}))
    return folder


def test_the_control_comparison_says_how_far_the_control_ran_and_tables_the_full_held_out_sets(load_script, tmp_path):
    m = load_script("package_demo")
    history = lambda *wers: [{"step": 2000 * (i + 1), "wer": w, "cer": w / 3, "utterances": 80}
                             for i, w in enumerate(wers)]
    pretrained = {"step": 4000, "history": history(0.74, 0.65)}
    cut_short = {"step": 2000, "history": history(0.75)}
    text = m.history_comparison(pretrained, cut_short, "a.yaml", "b.yaml")
    assert "stopped after 2,000 of the same schedule's steps" in text
    assert "| 2,000 | 0.740 | 0.750 |" in text and "4,000" not in text  # only steps both evaluated
    assert "no measurable head start" in text and "full held-out" not in text

    full = {"step": 4000, "history": history(0.75, 0.70)}
    # The control makes 2 more errors on each of 4 utterances out of 40 words: +20 points, every
    # bootstrap draw the same, so the interval is [+20, +20]; an unevaluated control: no row.
    final = write_eval(tmp_path / "final", [1, 2, 3, 4])
    control = write_eval(tmp_path / "control", [3, 4, 5, 6])
    folders = {"hibari-tts, greedy": (final, control),
               "espeak-ng, greedy": (write_eval(tmp_path / "final-espeak", [1, 1]), tmp_path / "not-evaluated")}
    text = m.history_comparison(pretrained, full, "a.yaml", "b.yaml", folders)
    assert "all 4,000 of the same schedule's steps" in text and "stopped after" not in text
    assert "At step 4,000 pretraining is ahead by 0.050 WER." in text
    assert "| hibari-tts, greedy | 0.250 | 0.450 | +20.00 [+20.00, +20.00] | 0.083 | 0.150 |" in text
    assert "espeak-ng" not in text

    # the other way round, with a spread: the sign and interval are compare_evals.py's
    other = write_eval(tmp_path / "other", [0, 2, 3, 9])
    row = m.heldout_row("x", final, other)
    from w2v_cli.evaluate import compare, read_scores

    c = compare(read_scores(final), read_scores(other))
    assert c.difference == 0.1 and c.low < 0.1 < c.high
    assert row == (f"| x | 0.250 | 0.350 | +10.00 [{m.points(c.low)}, {m.points(c.high)}] | 0.083 | 0.117 |")
    assert m.points(-0.0062) == "\u22120.62"
    # an eval folder without per-utterance scores: the WERs, no difference
    (other / "utterances.jsonl").unlink()
    assert m.heldout_row("x", final, other) == "| x | 0.250 | 0.350 | \u2013 | 0.083 | 0.117 |"
