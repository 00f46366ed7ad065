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


def test_the_control_comparison_says_how_far_the_control_ran_and_tables_the_full_held_out_sets(load_script):
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
    summaries = {"hibari-tts, greedy": ({"wer": 0.327, "cer": 0.086}, {"wer": 0.41, "cer": 0.12}),
                 "espeak-ng, greedy": ({"wer": 0.344, "cer": 0.087}, None)}  # a control not evaluated: no row
    text = m.history_comparison(pretrained, full, "a.yaml", "b.yaml", summaries)
    assert "all 4,000 of the same schedule's steps" in text and "stopped after" not in text
    assert "At step 4,000 pretraining is ahead by 0.050 WER." in text
    assert "| hibari-tts, greedy | 0.327 | 0.410 | 0.086 | 0.120 |" in text
    assert "espeak-ng" not in text
