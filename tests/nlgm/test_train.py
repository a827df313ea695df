"""nlgm.fit: both schemes climb the ELBO, determinism, checkpoints and resuming, early stopping,
Ctrl-C, validation; and a linear NLGM reaches the exact PPCA maximum likelihood on digits."""
import numpy as np
import pytest
import torch

import nlgm.train
from lgm.data import load_digits
from lgm.ppca import PPCA
from nlgm import NLGM, fit


@pytest.fixture(scope="module")
def digits():
    return load_digits()[0][:300]


def small(seed=0, **kwargs):
    return NLGM(64, 2, hidden=(32,), noise="diagonal", seed=seed, **kwargs)


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
    x = model._tensor(digits[:20])
    completion = trainer.complete(x, torch.Generator().manual_seed(0))
    phi = [p.detach().clone() for p in model.encoder_parameters()]
    theta = [p.detach().clone() for p in model.decoder_parameters()]
    mu, logvar, Z = completion
    trainer._step("theta", -model.log_px_given_z(x, Z.detach()).mean())
    assert all(torch.equal(a, b) for a, b in zip(phi, model.encoder_parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(theta, model.decoder_parameters()))


def test_the_same_seed_gives_the_same_model(digits):
    runs = []
    for _ in range(2):
        model = small()
        history = fit(model, digits, epochs=4, batch_size=64, progress=False, seed=5)
        runs.append((history, [p.detach().clone() for p in model.parameters()]))
    assert runs[0][0]["val_elbo"] == runs[1][0]["val_elbo"]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))


def test_resumed_training_continues_the_history_exactly(digits, tmp_path):
    straight = small()
    h_straight = fit(straight, digits, epochs=6, batch_size=64, progress=False, patience=None,
                     checkpoint=tmp_path / "a.pt")
    resumed = small()
    h_first = fit(resumed, digits, epochs=3, batch_size=64, progress=False, patience=None,
                  checkpoint=tmp_path / "b.pt")
    assert len(h_first["epoch"]) == 3
    again = small(seed=99)  # fresh weights: everything must come from the checkpoint
    h_resumed = fit(again, digits, epochs=6, batch_size=64, progress=False, patience=None,
                    checkpoint=tmp_path / "b.pt")
    assert h_resumed["epoch"] == [1, 2, 3, 4, 5, 6]
    assert h_resumed["val_elbo"][:3] == h_first["val_elbo"]
    assert h_resumed["val_elbo"] == h_straight["val_elbo"]
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


def test_ctrl_c_keeps_the_finished_epochs(digits, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = nlgm.train.ELBOAscent.reestimate

    def interrupt_in_epoch_three(self, x, completion):
        calls["n"] += 1
        if calls["n"] == 2 * 5 + 1:  # 270 training rows / 64 = 5 batches per epoch
            raise KeyboardInterrupt
        original(self, x, completion)

    monkeypatch.setattr(nlgm.train.ELBOAscent, "reestimate", interrupt_in_epoch_three)
    model = small()
    with pytest.warns(UserWarning, match="Interrupted"):
        history = fit(model, digits, epochs=10, batch_size=64, progress=False, checkpoint=tmp_path / "i.pt")
    assert history["epoch"] == [1, 2]
    saved = torch.load(tmp_path / "i.pt", weights_only=True)
    assert saved["history"]["epoch"] == [1, 2]


def test_threads_are_restored(digits):
    before = torch.get_num_threads()
    fit(small(), digits, epochs=1, progress=False, threads=1)
    assert torch.get_num_threads() == before


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


def test_linear_nlgm_reaches_the_ppca_maximum_likelihood_on_digits():
    """Lucas et al. (2019): the linear VAE's optimum is probabilistic PCA's maximum likelihood."""
    X = load_digits()[0]
    K = 8
    ppca = PPCA(K).fit(X).score(X)
    model = NLGM(64, K, hidden=(), decoder="linear", noise="isotropic", seed=0)
    # A step schedule for the learning rate (each call continues from the model it is given):
    # with a constant rate, minibatch noise keeps the ELBO ~0.5 nats below its maximum.
    for i, (lr, epochs) in enumerate([(1e-2, 150), (1e-3, 100), (1e-4, 50)]):
        fit(model, X, epochs=epochs, batch_size=128, lr=lr, val_fraction=0, seed=i, progress=False,
            initialise=i == 0)
    elbo = model.elbo(X, 200, generator=torch.Generator().manual_seed(0))
    # 200 samples per point over 1348 points: Monte Carlo s.e. of the mean ELBO < 0.005 nats.
    # The ELBO is a lower bound on PPCA's maximum (up to that error), and SGD must get within 0.05.
    assert ppca - 0.05 < elbo < ppca + 0.02
