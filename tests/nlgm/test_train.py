"""nlgm.fit: both schemes climb the ELBO, determinism, checkpoints and resuming, early stopping,
Ctrl-C, divergence, hostile input; and a linear NLGM with default settings reaches the exact
PPCA maximum likelihood on real data."""
import os

import numpy as np
import pytest
import torch

import lgm.completion
import nlgm.checkpoint
import nlgm.train
from lgm.data import load_digits
from lgm.ppca import PPCA
from nlgm import NLGM, fit


@pytest.fixture(scope="module")
def digits():
    return load_digits()[0][:300]


def small(seed=0, **kwargs):
    return NLGM(64, 2, hidden=(32,), noise="diagonal", seed=seed, **kwargs)


@pytest.mark.slow  # ten seconds or more on the shared 2-core machine (make quick skips it)
@pytest.mark.parametrize("scheme", ["joint", "alternating"])
def test_both_schemes_raise_the_elbo(digits, scheme):
    model = small()
    model.init_from_data(digits)
    before = model.elbo(digits, 20, generator=torch.Generator().manual_seed(0))
    history = fit(model, digits, epochs=15, batch_size=50, lr=3e-3, val_fraction=0, scheme=scheme,
                  progress=False, initialise=False)
    after = model.elbo(digits, 20, generator=torch.Generator().manual_seed(0))
    # 15 epochs move the ELBO by tens of nats; the 20-sample estimates are good to ~0.5 nats.
    assert after > before + 10
    assert history["train_elbo"][-1] > history["train_elbo"][0] + 5
    assert len(history["epoch"]) == 15 and np.all(np.isnan(history["val_elbo"]))


def test_the_alternating_theta_step_leaves_the_encoder_alone(digits):
    model = small()
    trainer = nlgm.train.ELBOAscent(model, lr=1e-2, n_samples=1, scheme="alternating")
    x = model.check_input(digits[:20])
    completion = trainer.complete(x, torch.Generator().manual_seed(0))
    phi = [p.detach().clone() for p in model.encoder_parameters()]
    theta = [p.detach().clone() for p in model.decoder_parameters()]
    trainer._step("theta", x, completion)
    assert all(torch.equal(a, b) for a, b in zip(phi, model.encoder_parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(theta, model.decoder_parameters()))


@pytest.mark.parametrize("posterior, free_bits", [("diagonal", 0.0), ("diagonal", 0.5),
                                                   ("full", 0.0), ("iaf", 0.0)])
def test_the_loss_of_no_rows_is_zero_with_a_zero_gradient_for_every_parameter(posterior,
                                                                             free_bits):
    # Under torchrun, a process whose share of a last global batch is empty still takes its part
    # in DDP's average of the gradients: its loss must be 0 (not the NaN of a mean over no rows),
    # and every parameter of the step must get a gradient (zero), or DDP would wait for it.
    model = small(posterior=posterior).double()
    loss = nlgm.train.StepLoss(model, free_bits)
    x = torch.zeros((0, 64), dtype=torch.float64)
    completion = model.complete(x, 2, generator=torch.Generator().manual_seed(0))
    for block, parameters in (("theta", model.decoder_parameters()), ("joint", model.parameters())):
        model.zero_grad(set_to_none=True)
        value, elbo = loss(x, completion, block, 0.5)
        value.backward(retain_graph=True)
        assert value.item() == 0 and (elbo is None or elbo.shape == (0,))
        grads = [p.grad for p in parameters if p.requires_grad]
        assert grads and all(g is not None and not g.any() for g in grads)


def test_the_same_seed_gives_the_same_model(digits):
    runs = []
    for _ in range(2):
        model = small()
        history = fit(model, digits, epochs=4, batch_size=64, progress=False, seed=5)
        runs.append((history, [p.detach().clone() for p in model.parameters()]))
    assert runs[0][0]["val_elbo"] == runs[1][0]["val_elbo"]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))


def test_an_interrupted_run_resumes_from_its_checkpoint_exactly(digits, tmp_path, monkeypatch):
    straight = small()
    h_straight = fit(straight, digits, epochs=6, batch_size=64, progress=False, patience=None)
    original = nlgm.train.ELBOAscent.reestimate
    calls = {"n": 0}

    def interrupt_in_epoch_four(self, x, completion):
        calls["n"] += 1
        if calls["n"] == 3 * 5 + 2:  # 270 training rows / 64 = 5 batches per epoch
            raise KeyboardInterrupt
        original(self, x, completion)

    with monkeypatch.context() as patch:
        patch.setattr(nlgm.train.ELBOAscent, "reestimate", interrupt_in_epoch_four)
        with pytest.warns(UserWarning, match="Interrupted"):
            h_first = fit(small(), digits, epochs=6, batch_size=64, progress=False, patience=None,
                          checkpoint=tmp_path / "b.pt")
    assert h_first["epoch"] == [1, 2, 3]
    again = small(seed=99)  # fresh weights: everything must come from the checkpoint
    h_resumed = fit(again, digits, epochs=6, batch_size=64, progress=False, patience=None,
                    checkpoint=tmp_path / "b.pt")
    assert h_resumed["epoch"] == [1, 2, 3, 4, 5, 6]
    assert h_resumed["val_elbo"] == h_straight["val_elbo"]
    assert h_resumed["lr"] == h_straight["lr"]
    assert all(torch.equal(a, b) for a, b in zip(straight.parameters(), again.parameters()))


def test_a_checkpoint_of_another_model_is_refused(digits, tmp_path):
    fit(small(), digits, epochs=1, progress=False, checkpoint=tmp_path / "c.pt")
    with pytest.raises(ValueError, match="different model"):
        fit(NLGM(64, 3, hidden=(32,)), digits, epochs=2, progress=False, checkpoint=tmp_path / "c.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="could not be read"):
        fit(small(), digits, epochs=2, progress=False, checkpoint=tmp_path / "junk.pt")


def test_early_stopping_keeps_the_best_validation_parameters(digits):
    model = small()
    history = fit(model, digits, epochs=200, batch_size=32, lr=3e-2, patience=2, seed=1, progress=False)
    assert history["stopped_early"]
    n = len(history["epoch"])
    assert n < 200 and n - history["best_epoch"] == 2
    best = max(history["val_elbo"])
    assert history["val_elbo"][history["best_epoch"] - 1] == best
    # Recompute the validation ELBO of the returned model with the split and noise fit uses.
    _, val_idx = nlgm.train._validation_split(len(digits), 0.1, 1)
    again = model.elbo(digits[val_idx], 1, generator=torch.Generator().manual_seed(2))
    assert again == pytest.approx(best, abs=1e-4)


def test_the_learning_rate_follows_the_cosine_to_zero(digits):
    history = fit(small(), digits, epochs=8, lr=1e-2, val_fraction=0, progress=False)
    expected = [1e-2 * (1 + np.cos(np.pi * e / 8)) / 2 for e in range(8)]
    np.testing.assert_allclose(history["lr"], expected, rtol=1e-12)


def test_ctrl_c_keeps_the_finished_epochs(digits, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = nlgm.train.ELBOAscent.reestimate

    def interrupt_in_epoch_three(self, x, completion):
        calls["n"] += 1
        if calls["n"] == 2 * 5 + 3:  # 270 training rows / 64 = 5 batches per epoch
            raise KeyboardInterrupt  # after two steps of epoch 3
        original(self, x, completion)

    monkeypatch.setattr(nlgm.train.ELBOAscent, "reestimate", interrupt_in_epoch_three)
    model = small()
    with pytest.warns(UserWarning, match="Interrupted"):
        history = fit(model, digits, epochs=10, batch_size=64, progress=False, checkpoint=tmp_path / "i.pt")
    assert history["epoch"] == [1, 2]
    saved = torch.load(tmp_path / "i.pt", weights_only=True)
    assert saved["history"]["epoch"] == [1, 2]
    # The model has the parameters of its best finished epoch (not those of the batch step
    # taken in epoch 3 before Ctrl-C), the same as the checkpoint's best state.
    assert history["best_epoch"] in (1, 2)
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in saved["best_state"].items())


def test_fit_leaves_torchs_threads_alone(digits, monkeypatch):
    def refuse(n):
        raise AssertionError("a library call changed torch's global thread count")

    before = torch.get_num_threads()
    monkeypatch.setattr(torch, "set_num_threads", refuse)
    fit(small(), digits, epochs=1, progress=False)
    assert torch.get_num_threads() == before


def test_data_are_checked_once_per_call_not_per_minibatch(digits, monkeypatch):
    calls = {"n": 0}
    original = NLGM.check_input

    def counting(self, *args, **kwargs):
        calls["n"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(NLGM, "check_input", counting)
    fit(small(), digits, epochs=3, batch_size=16, progress=False)  # 3 x 17 minibatches
    assert calls["n"] <= 2  # fit's own check, and init_from_data's
    calls["n"] = 0
    small().elbo(digits, 3)
    small().log_likelihood(digits, 20)
    assert calls["n"] == 2


@pytest.mark.parametrize("kwargs, match", [
    (dict(epochs=0), "epochs"),
    (dict(batch_size=0), "batch_size"),
    (dict(lr=-1.0), "lr"),
    (dict(val_fraction=1.0), "val_fraction"),
    (dict(val_fraction=0.001), "val_fraction"),
    (dict(scheme="em"), "scheme"),
    (dict(patience=0), "patience"),
    (dict(seed=-3), "seed"),
    (dict(device="tpu"), "device"),
    (dict(lr=float("nan")), "lr"),
])
def test_bad_arguments_are_named(digits, kwargs, match):
    model = small()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=match):
        fit(model, digits, progress=False, **kwargs)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())  # left as it was


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_without_it_is_a_clear_error(digits):
    with pytest.raises(ValueError, match="CUDA"):
        fit(small(), digits, device="cuda", progress=False)


def test_a_diverging_run_stops_with_a_clear_error_and_the_starting_parameters(digits):
    model = small()
    with pytest.raises(RuntimeError, match=r"diverged in epoch 1.*starting parameters.*lr"):
        fit(model, digits, epochs=5, lr=1e6, progress=False)
    start = small().init_from_data(digits[nlgm.train._validation_split(300, 0.1, 0)[0]])
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                  start.state_dict().values()))


def test_a_diverging_run_keeps_its_checkpoint_of_the_last_finite_epoch(digits, tmp_path):
    fit(small(), digits, epochs=2, progress=False, patience=None, checkpoint=tmp_path / "c.pt")
    with pytest.raises(RuntimeError, match="diverged"):  # resumed with an absurd rate
        fit(small(), digits, epochs=4, lr=1e6, progress=False, patience=None,
            checkpoint=tmp_path / "c.pt")
    assert torch.load(tmp_path / "c.pt", weights_only=True)["history"]["epoch"] == [1, 2]


def test_data_too_large_for_float32_are_named():
    X = load_digits()[0][:100] * 1e30  # finite, but the variances overflow float32
    with pytest.raises(ValueError, match="too large.*standardise"):
        fit(small(), X, epochs=1, progress=False)
    with pytest.raises(ValueError, match="too large"):
        small().elbo(X * 1e10)  # 1e40 is not a float32 at all
    with pytest.raises(RuntimeError, match="diverged"):  # no rescaling by init_from_data
        fit(small(), X, epochs=1, progress=False, initialise=False)


def test_complex_data_and_codes_are_refused(digits):
    model = small()
    for bad in (digits + 1j, torch.as_tensor(digits) * (1 + 0j)):
        with pytest.raises(TypeError, match="complex"):
            model.encode(bad)
        with pytest.raises(TypeError, match="complex"):
            fit(model, bad, epochs=1, progress=False)
    with pytest.raises(TypeError, match="z is complex"):
        model.decode(np.zeros((3, 2)) + 1j)


def test_bad_codes_are_refused():
    model = small()
    with pytest.raises(ValueError, match="z contains NaN"):
        model.decode(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(ValueError, match="latent_dim=2"):
        model.decode(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="latent_dim=2"):
        model.decode(1.0)


def test_a_model_that_is_not_an_nlgm_or_missing_data_is_named(digits):
    with pytest.raises(TypeError, match="model must be an nlgm.NLGM; got NoneType"):
        fit(None, digits)
    with pytest.raises(ValueError, match="X must be a 2-D"):
        fit(small(), None, progress=False)


def test_a_checkpoint_that_cannot_be_written_is_named_before_training(digits, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    model = small()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=f"checkpoint {blocker}/run/c.pt cannot be written"
                                         fr" \({blocker} is a file, not a folder\)"):
        fit(model, digits, epochs=1, progress=False, checkpoint=blocker / "run" / "c.pt")
    with pytest.raises(ValueError, match=fr"\({blocker} is a file, not a folder\)"):
        fit(model, digits, epochs=1, progress=False, checkpoint=blocker / "c.pt")
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="is a folder"):
        fit(model, digits, epochs=1, progress=False, checkpoint=tmp_path)


def test_checking_the_checkpoints_folder_touches_no_one_elses_file(tmp_path):
    # Under torchrun every process checks the checkpoint's folder at the same moment. The check used
    # to write and remove c.pt.tmp, the name of the checkpoint's own temporary file: one process
    # removed it under another's feet (a flaky "cannot be written (No such file or directory)" that
    # killed the run), and a checkpoint being written by rank 0 would have been truncated.
    import threading

    from nlgm.checkpoint import checkpoint_path

    path = tmp_path / "c.pt"
    (tmp_path / "c.pt.tmp").write_bytes(b"rank 0's checkpoint, half written")
    assert checkpoint_path(path) == path
    assert (tmp_path / "c.pt.tmp").read_bytes() == b"rank 0's checkpoint, half written"
    errors = []

    def probe_often():
        for _ in range(300):
            try:
                checkpoint_path(path)
            except ValueError as err:
                errors.append(err)

    threads = [threading.Thread(target=probe_often) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt.tmp"]  # no probe left behind


def test_a_checkpoint_in_a_folder_that_refuses_writing_is_named(digits, tmp_path, monkeypatch):
    # A read-only folder, as the file system reports it to any user (root included, which
    # ignores permission bits): the probe write fails.
    def refused(*args, dir=None, **kwargs):
        raise PermissionError(13, "Permission denied", str(dir))

    monkeypatch.setattr(nlgm.checkpoint.tempfile, "mkstemp", refused)
    model = small()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"c.pt cannot be written \(Permission denied\)"):
        fit(model, digits, epochs=1, progress=False, checkpoint=tmp_path / "c.pt")
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_a_checkpoint_missing_a_key_is_named(digits, tmp_path):
    fit(small(), digits, epochs=1, progress=False, checkpoint=tmp_path / "c.pt")
    saved = torch.load(tmp_path / "c.pt", weights_only=True)
    del saved["optimisers"]
    torch.save(saved, tmp_path / "c.pt")
    with pytest.raises(ValueError, match=f"checkpoint {tmp_path / 'c.pt'} could not be read.*optimisers"):
        fit(small(), digits, epochs=2, progress=False, checkpoint=tmp_path / "c.pt")


def standardized(loader):
    from sklearn.preprocessing import StandardScaler

    return StandardScaler().fit_transform(loader().data)


@pytest.mark.slow
@pytest.mark.parametrize("name, K", [("breast_cancer", 4), ("wine", 3)])
def test_a_linear_nlgm_with_default_settings_reaches_the_ppca_maximum_likelihood(name, K):
    """Lucas et al. (2019): the linear VAE's optimum is probabilistic PCA's maximum likelihood.

    Default settings of fit: a linear model trains on all rows (val_fraction=0) with lr 3e-2
    annealed to 0 over 1000 epochs.
    """
    import sklearn.datasets

    X = standardized(getattr(sklearn.datasets, f"load_{name}"))
    ppca = PPCA(K).fit(X).score(X)  # the closed-form maximum on the training rows
    model = NLGM(X.shape[1], K, hidden=(), decoder="linear", noise="isotropic", seed=0)
    fit(model, X, progress=False)
    # A linear encoder with a diagonal q can hold the exact posterior at the PPCA optimum, so
    # the maximal ELBO is the maximal log-likelihood. 400 samples per row: Monte Carlo standard
    # error of the mean ELBO < 0.002 nats here.
    elbo = model.elbo(X, 400, generator=torch.Generator().manual_seed(0))
    assert ppca - 0.01 < elbo < ppca + 0.005


def test_a_file_that_is_not_a_checkpoint_gets_one_short_line(digits, tmp_path):
    # torch's own message for it is a page that advises weights_only=False (unsafe, and no help).
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    with pytest.raises(ValueError) as err:
        fit(small(), digits, epochs=1, progress=False, checkpoint=junk)
    message = str(err.value)
    assert message.startswith(f"checkpoint {junk} could not be read") and "\n" not in message
    assert "weights_only" not in message and "not a file written by torch.save" in message
    junk.write_bytes(b"")
    with pytest.raises(ValueError, match="empty or cut short"):
        fit(small(), digits, epochs=1, progress=False, checkpoint=junk)
    junk.write_text("not a model")
    with pytest.raises(ValueError) as err:
        NLGM.load(junk)
    assert "weights_only" not in str(err.value) and "\n" not in str(err.value)


def test_saving_a_model_under_a_file_names_the_path(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match=f"{blocker}/m.pt cannot be written"):
        small().save(blocker / "m.pt")


@pytest.mark.parametrize("lr", [True, "1e-3"])
def test_a_learning_rate_that_is_not_a_number_is_refused(digits, lr):
    # float() would take both (True is 1.0): a slip that must not train silently.
    with pytest.raises(TypeError, match="lr must be a number"):
        fit(small(), digits, lr=lr, epochs=1, progress=False)


def test_a_resumed_run_keeps_its_split_and_takes_this_calls_patience(digits, tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    fit(small(), digits, epochs=1, patience=3, progress=False, checkpoint=path)
    # Another seed or val_fraction would validate on rows the first run trained on.
    for changed in (dict(seed=1), dict(val_fraction=0.2)):
        with pytest.raises(ValueError, match=f"checkpoint {path} was written for .*seed=0"):
            fit(small(), digits, epochs=2, progress=False, checkpoint=path, **changed)
    first = torch.load(path, weights_only=True)["history"]["val_elbo"]
    calls = spy_on_the_loop(monkeypatch)
    fit(small(), digits, epochs=2, patience=7, progress=False, checkpoint=path)
    assert calls[-1]["patience"] == 7  # not the 3 of the checkpoint
    assert calls[-1]["history"][:1] == first  # the scores so far (and their best) carry on


def spy_on_the_loop(monkeypatch):
    """Record the keyword arguments and the result of every call of lgm.completion.run."""
    calls, run = [], lgm.completion.run

    def spy(*args, **kwargs):
        calls.append(dict(kwargs, history=list(kwargs.get("history") or [])))
        calls[-1]["result"] = result = run(*args, **kwargs)
        return result

    monkeypatch.setattr(lgm.completion, "run", spy)
    return calls


@pytest.mark.parametrize("val_fraction", [0.0, 0.1])
def test_fit_goes_through_the_one_loop_of_em(digits, monkeypatch, val_fraction):
    # nlgm.fit is lgm.completion.run with an epoch as its sweep: the loop's history is the
    # score of each epoch (the validation ELBO, or the training one without validation), and
    # the reason it gives is the one fit reports.
    calls = spy_on_the_loop(monkeypatch)
    history = fit(small(), digits, epochs=3, batch_size=64, val_fraction=val_fraction,
                  patience=2, progress=False)
    assert len(calls) == 1
    call = calls[0]
    assert call["n_iter"] == 3 and call["patience"] == (2 if val_fraction else None)
    scores = history["val_elbo"] if val_fraction else history["train_elbo"]
    assert call["result"].history == scores and call["result"].reason == history.stopped
    assert history.stopped == "n_iter" and not history["stopped_early"]


def test_history_is_lists_and_what_stopped_it(digits):
    history = fit(small(), digits, epochs=2, progress=False)
    for key in ("epoch", "train_elbo", "val_elbo", "lr", "beta", "seconds"):
        assert isinstance(history[key], list) and len(history[key]) == 2
    assert history.beta == [1.0, 1.0] and history.best_epoch in (1, 2)


def test_the_kl_weight_warms_up_linearly_to_beta(digits):
    assert [nlgm.train.kl_weight(0.5, e, 3) for e in range(1, 7)] == [0.125, 0.25, 0.375, 0.5, 0.5, 0.5]
    assert nlgm.train.kl_weight(0.5, 1, 0) == 0.5
    history = fit(small(), digits, epochs=3, kl_warmup=2, beta=0.9, progress=False)
    np.testing.assert_allclose(history.beta, [0.3, 0.6, 0.9], rtol=1e-15)


@pytest.mark.parametrize("beta, free_bits", [(0.25, 0.0), (1.0, 0.5), (2.0, 3.0)])
def test_a_step_climbs_the_weighted_objective_by_hand(digits, beta, free_bits):
    # The objective of a step, written out by hand: (1/N) sum_n (1/J) sum_j log p(x_n | z_nj)
    # - beta sum_k max(lambda, (1/N) sum_n KL_nk); the trainer's value and its gradient in
    # every parameter must be those.
    model = NLGM(64, 2, hidden=(32,), noise="diagonal", seed=0).double()
    model.init_from_data(digits)
    x = model.check_input(digits[:40])
    trainer = nlgm.train.ELBOAscent(model, lr=1e-3, n_samples=3, scheme="joint",
                                    free_bits=free_bits)
    trainer.beta = beta

    def by_hand():
        mu, logvar, z = model.complete(x, 3, generator=torch.Generator().manual_seed(0))
        KL = 0.5 * (torch.exp(logvar) + mu**2 - 1 - logvar)
        return (model.log_px_given_z(x, z).mean()
                - beta * torch.clamp(KL.mean(dim=0), min=free_bits).sum())

    def trainers():  # minus the step's loss (a sum over the rows), per row
        completion = model.complete(x, 3, generator=torch.Generator().manual_seed(0))
        return -trainer.loss(x, completion, "joint", trainer.beta)[0] / len(x)

    values, grads = [], []
    for objective in (by_hand, trainers):
        model.zero_grad()
        value = objective()
        value.backward()
        values.append(value.item())
        grads.append([p.grad.clone() for p in model.parameters()])
    assert values[1] == pytest.approx(values[0], rel=1e-12)
    for a, b in zip(*grads):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("posterior", ["full", "iaf"])
def test_the_kl_weight_of_a_richer_posterior_weights_its_own_kl(digits, posterior):
    # With a full-covariance or flow q, the weighted objective is (1/N) sum_n [(1/J) sum_j
    # log p(x_n | z_nj) - beta KL_n], KL_n the completion's own (closed form or Monte Carlo):
    # the diagonal formula of weighted_kl must not be used for it.
    model = NLGM(64, 2, hidden=(32,), posterior=posterior, seed=0).double()
    model.init_from_data(digits)
    x = model.check_input(digits[:40])
    trainer = nlgm.train.ELBOAscent(model, lr=1e-3, n_samples=3, scheme="joint")
    trainer.beta = 0.3

    def value(weighted):
        completion = model.complete(x, 3, generator=torch.Generator().manual_seed(0))
        if not weighted:
            return (model.log_px_given_z(x, completion[2]).mean() - 0.3 * completion.kl.mean()).item()
        return -trainer.loss(x, completion, "joint", trainer.beta)[0].item() / len(x)

    assert value(True) == pytest.approx(value(False), rel=1e-12)


@pytest.mark.parametrize("posterior", ["full", "iaf"])
def test_free_bits_are_refused_for_a_posterior_without_units(digits, posterior):
    model = NLGM(64, 2, hidden=(32,), posterior=posterior, seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match="free_bits.*diagonal"):
        fit(model, digits, epochs=1, free_bits=0.5, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("kwargs, match", [
    (dict(beta=-1.0), "beta"), (dict(free_bits=-0.1), "free_bits"), (dict(kl_warmup=-1), "kl_warmup"),
    (dict(kl_warmup=1.5), "kl_warmup"),
])
def test_bad_kl_settings_are_named(digits, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit(small(), digits, epochs=1, progress=False, **kwargs)


def test_the_elbo_figure_draws_the_history_that_fit_returns(digits):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nlgm.figures import plot_elbo_curve

    history = fit(small(), digits, epochs=2, progress=False)
    fig = plot_elbo_curve(history)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    plt.close(fig)
    assert labels == ["training ELBO", "validation ELBO", "kept"]


def test_a_checkpoint_of_an_older_history_is_named(digits, tmp_path):
    # written by the nlgm.fit that returned a dict with "stopped_early" (and kept "stopping")
    fit(small(), digits, epochs=1, progress=False, checkpoint=tmp_path / "c.pt")
    saved = torch.load(tmp_path / "c.pt", weights_only=True)
    saved["history"] = dict(saved["history"], stopped_early=False)
    torch.save(saved, tmp_path / "c.pt")
    with pytest.raises(ValueError, match=r"could not be read \(TypeError: .*stopped_early"):
        fit(small(), digits, epochs=2, progress=False, checkpoint=tmp_path / "c.pt")
