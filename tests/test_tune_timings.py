"""How many trials really ran at once, from Tune's clock in each trial's result rows (`timestamp` in
whole seconds, `time_this_iter_s`), as tune/results.py reads it back: what the report sets beside
report A's "16 models in parallel". No Ray needed."""

from __future__ import annotations

import pandas as pd

from cifar_core.tune.results import TrialRecord, _epoch_history, concurrency


def trial(*epochs: tuple[int, float]) -> TrialRecord:
    """A trial whose epochs Tune reported at these (timestamp, time_this_iter_s)."""
    record = TrialRecord("t", "TERMINATED", {"model.name": "tinycnn"})
    record.history = [{"epoch": i, "timestamp": ts, "time_this_iter_s": took} for i, (ts, took) in enumerate(epochs, 1)]
    return record


def test_the_clock_of_tunes_result_rows_is_kept_per_epoch():
    frame = pd.DataFrame([{"epoch": 1, "val_acc": 0.1, "timestamp": 1000, "time_this_iter_s": 12.5, "pid": 7},
                          {"epoch": 2, "val_acc": 0.2, "timestamp": 1012, "time_this_iter_s": 11.8, "pid": 7}])
    history = _epoch_history(frame)
    assert [(h["timestamp"], h["time_this_iter_s"]) for h in history] == [(1000, 12.5), (1012, 11.8)]
    record = TrialRecord("t", "TERMINATED", {}, history)
    assert record.running == [(987.5, 1000), (1000.2, 1012)]


def test_trials_at_once_is_what_overlapped_not_the_setting():
    # a runs 100-120, b 105-125, c 122-140: never more than two together.
    a, b, c = trial((110, 10), (120, 10)), trial((115, 10), (125, 10)), trial((130, 8), (140, 10))
    measured = concurrency([t.running for t in (a, b, c)])
    assert measured["max"] == 2
    # One for 5 s, two for 15, one for 2, two for 3, one for 15: 40 s busy.
    assert measured["busy_s"] == 40.0 and measured["mean"] == round((5 + 2 * 15 + 2 + 2 * 3 + 15) / 40, 2)


def test_one_second_of_overlap_from_rounded_timestamps_is_not_a_second_trial():
    # Run one after the other; whole-second timestamps make the second seem to start 0.6 s early.
    first, second = trial((100, 5.0)), trial((106, 6.6))
    assert concurrency([first.running, second.running])["max"] == 1
    # Consecutive epochs of one trial that seem to overlap are one span, not two trials.
    assert concurrency([trial((100, 5.0), (105, 5.7)).running]) == {"max": 1, "mean": 1.0, "busy_s": 10.0}


def test_no_timings_no_measurement():
    assert concurrency([]) is None and concurrency([TrialRecord("t", "ERROR", {}).running]) is None


def test_an_epoch_reported_again_keeps_the_row_of_its_training():
    """A trial started again reports its trained epochs again (replayed, from its last.pt): the row of
    the epoch's training keeps when and where it ran; one whose row Tune lost still counts its metrics,
    but not its clock or node, which say when it was reported again, not trained."""
    trained = {"val_acc": 0.1, "time_this_iter_s": 10.0, "node_id": "a"}
    again = {"val_acc": 0.1, "time_this_iter_s": 0.01, "node_id": "b", "replayed": True}
    frame = pd.DataFrame([{**trained, "epoch": 1, "timestamp": 1010}, {**again, "epoch": 1, "timestamp": 2000},
                          {**again, "epoch": 2, "timestamp": 2000, "val_acc": 0.2},  # its own row was lost
                          {**trained, "epoch": 3, "timestamp": 2012, "node_id": "b", "val_acc": 0.3}])
    record = TrialRecord("t", "TERMINATED", {}, _epoch_history(frame))
    assert [(h["epoch"], h["val_acc"], h["node_id"]) for h in record.history] == [(1, 0.1, "a"), (2, 0.2, "b"), (3, 0.3, "b")]
    assert record.best["epoch"] == 3 and record.epochs == 3
    assert record.running == [(1000.0, 1010), (2002.0, 2012)] and record.time_s == 20.0
    assert record.nodes == ["a", "b"]
