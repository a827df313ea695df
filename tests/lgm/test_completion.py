"""The one loop (lgm.completion) with a tiny fake model that records what the loop does."""
import numpy as np
import pytest

from lgm.completion import complete_then_reestimate, converged, run, sweeps_since_best


class RecordingModel:
    """complete returns a tag; reestimate records (batch, completion) and counts sweeps."""

    def __init__(self, interrupt_at=None):
        self.calls = []
        self.n_reestimates = 0
        self.interrupt_at = interrupt_at

    def complete(self, batch, rng):
        if self.interrupt_at is not None and self.n_reestimates == self.interrupt_at:
            raise KeyboardInterrupt
        self.calls.append(("complete", batch))
        return f"z{batch}", rng

    def reestimate(self, batch, completion):
        self.calls.append(("reestimate", batch, completion[0]))
        self.n_reestimates += 1


def test_complete_comes_before_reestimate_for_every_batch():
    model = RecordingModel()
    rng = np.random.default_rng(0)
    complete_then_reestimate(model, [1, 2, 3], rng)
    assert model.calls == [
        ("complete", 1), ("reestimate", 1, "z1"),
        ("complete", 2), ("reestimate", 2, "z2"),
        ("complete", 3), ("reestimate", 3, "z3"),
    ]


def test_rng_reaches_complete():
    seen = []

    class Model(RecordingModel):
        def complete(self, batch, rng):
            seen.append(rng)
            return super().complete(batch, rng)

    rng = np.random.default_rng(0)
    complete_then_reestimate(Model(), [1], rng)
    assert seen == [rng]


def test_run_calls_batches_each_sweep_and_records_the_score():
    model = RecordingModel()
    sweeps = []

    def batches():
        sweeps.append(len(sweeps))
        return ["a", "b"]

    history, reason = run(model, batches, n_iter=4, score=lambda: model.n_reestimates, rng=None)
    assert sweeps == [0, 1, 2, 3]
    assert history == [2.0, 4.0, 6.0, 8.0]
    assert reason == "n_iter"


def test_converged_stops_when_the_gain_falls_below_tol():
    stop = converged(0.1)
    assert not stop([1.0])
    assert not stop([1.0, 2.0])
    assert stop([1.0, 1.05])
    assert stop([1.0, 0.5])  # a decrease is also a gain below tol
    scores = iter([1.0, 2.0, 2.5, 2.55, 2.56, 2.57])
    history, reason = run(RecordingModel(), lambda: [0], n_iter=10, score=lambda: next(scores),
                          rng=None, stop=converged(0.1))
    assert history == [1.0, 2.0, 2.5, 2.55] and reason == "stop"


def test_on_iteration_sees_the_history_so_far():
    scores = iter([3.0, 4.0])
    seen = []
    history, _ = run(RecordingModel(), lambda: [0], n_iter=2, score=lambda: next(scores), rng=None,
                     on_iteration=lambda h: seen.append(list(h)))
    assert history == [3.0, 4.0]
    assert seen == [[3.0], [3.0, 4.0]]


def test_keyboard_interrupt_returns_the_history_with_a_warning():
    model = RecordingModel(interrupt_at=3)  # Ctrl-C during the fourth sweep's completion
    with pytest.warns(UserWarning, match="Interrupted after 3 sweeps"):
        history, reason = run(model, lambda: [0], n_iter=10, score=lambda: model.n_reestimates, rng=None)
    assert history == [1.0, 2.0, 3.0]
    assert reason == "interrupted"
    assert model.n_reestimates == 3  # the parameters of the last finished re-estimation


def test_the_progress_bar_shows_the_label_the_sweeps_and_the_score(capsys):
    scores = iter([1.0, 2.0, 3.5])
    history, _ = run(RecordingModel(), lambda: [0], n_iter=3, score=lambda: next(scores), rng=None,
                     progress=True, desc="EM here")
    assert history == [1.0, 2.0, 3.5]
    shown = capsys.readouterr().err  # tqdm draws on stderr outside a notebook
    assert "EM here" in shown and "3/3" in shown and "score=3.5000" in shown
    run(RecordingModel(), lambda: [0], n_iter=3, score=lambda: 1.0, rng=None, desc="EM here")
    assert capsys.readouterr().err == ""  # progress=False draws nothing


def test_patience_stops_when_the_best_score_is_that_many_sweeps_old():
    # best 5.0 at sweep 2; an equal score is no improvement
    scores = iter([1.0, 5.0, 4.0, 5.0, 3.0, 9.0])
    history, reason = run(RecordingModel(), lambda: [0], n_iter=10, score=lambda: next(scores),
                          rng=None, patience=3)
    assert history == [1.0, 5.0, 4.0, 5.0, 3.0] and reason == "patience"
    assert [sweeps_since_best(history[:n]) for n in range(1, 6)] == [0, 0, 1, 2, 3]


def test_a_resumed_history_counts_towards_n_iter_and_the_stop_rules():
    earlier = [1.0, 2.0]
    model = RecordingModel()
    history, reason = run(model, lambda: [0], n_iter=5, score=lambda: 3.0, rng=None,
                          history=earlier)
    assert history is earlier and history == [1.0, 2.0, 3.0, 3.0, 3.0]
    assert model.n_reestimates == 3 and reason == "n_iter"
    # a history that already meets a stop rule runs no sweep at all
    model = RecordingModel()
    history, reason = run(model, lambda: [0], n_iter=9, score=lambda: 0.0, rng=None,
                          history=[3.0, 1.0, 1.0], patience=2)
    assert model.n_reestimates == 0 and reason == "patience"


def test_a_score_that_is_not_finite_ends_the_run_before_on_iteration_sees_it():
    scores = iter([1.0, float("nan"), 2.0])
    seen = []
    history, reason = run(RecordingModel(), lambda: [0], n_iter=10, score=lambda: next(scores),
                          rng=None, on_iteration=lambda h: seen.append(h[-1]))
    assert reason == "diverged" and len(history) == 2 and seen == [1.0]


def test_the_interruption_warning_says_what_the_model_keeps():
    model = RecordingModel(interrupt_at=2)
    with pytest.warns(UserWarning, match=r"Interrupted after 2 epochs; it keeps epoch 1\.$"):
        run(model, lambda: [0], n_iter=10, score=lambda: 1.0, rng=None, unit="epochs",
            kept=lambda h: f"it keeps epoch {len(h) - 1}.")
