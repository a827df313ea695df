"""The nonlinear Gaussian model (NLGM) with an encoder: the variational autoencoder.

Generative model (implements eq-nlgm-marginal): z ~ N(0, I_K), then x = f(z; theta) + e with
e ~ N(0, D), so p(x) = integral N(x; f(z), D) N(z; 0, I_K) dz. The decoder f is a small network
(or the linear map f(z) = A z + b, which gives back probabilistic PCA or factor analysis);
D is sigma^2 I ("isotropic") or a diagonal ("diagonal", as in the LGM). For binary data the
Gaussian can be replaced by independent Bernoullis with means sigmoid(f(z)).

The encoder q(z | x; phi) = N(z; mu(x), diag(exp(logvar(x)))) is a network with two outputs,
the approximate posterior the ELBO needs; ``posterior="full"`` or ``"iaf"`` makes q richer
(:mod:`nlgm.posterior`). The pieces of the ELBO are the pure functions of
:mod:`nlgm.elbo`; this class only wires them to the networks.
"""
import math
import pickle

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lgm.checks import check_data, check_option, check_positive, check_positive_int, check_seed
from nlgm.checkpoint import load_failure
from nlgm.elbo import (
    bernoulli_log_likelihood,
    gaussian_log_likelihood,
    importance_weighted_log_likelihood,
    monte_carlo_elbo,
)
from nlgm.posterior import POSTERIORS, Completion, log_prior, make_posterior

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}

#: Default floor of every noise variance D_i (data units squared). Keeps the Gaussian likelihood
#: bounded when the decoder fits a pixel that never varies. For digits scaled to [0, 1) with
#: uniform dequantisation the noise of a constant pixel is (1/17)^2 / 12 = 2.9e-4, above it.
NOISE_FLOOR = 1e-4

# The most numbers one decoder call may produce during evaluation (samples x rows x width),
# so that an importance-weighted estimate with 5000 samples fits in memory.
_MAX_ELEMENTS = 2**22


def _layers(sizes, activation):
    """Linear layers between consecutive ``sizes`` with ``activation`` between them."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return layers


def _refuse_complex(value, name):
    """A TypeError if ``value`` (array_like or Tensor) holds complex numbers.

    (numpy would drop the imaginary parts with only a warning.)
    """
    if isinstance(value, torch.Tensor):
        is_complex = value.is_complex()
    else:
        try:
            is_complex = np.iscomplexobj(value)
        except (TypeError, ValueError):  # ragged or odd input: the later checks name it
            is_complex = False
    if is_complex:
        raise TypeError(f"{name} is complex; the model takes real numbers (take .real or abs() "
                        "first if that is what you mean).")


class GaussianEncoder(nn.Sequential):
    """The encoder q(z | x; phi) = N(mu(x), diag(exp(logvar(x)))), an MLP with 2K outputs (and
    ``n_extra`` more for a richer posterior).

    ``encoder(x)`` standardises x with the buffers ``x_shift`` and ``x_scale`` (set by
    :meth:`NLGM.init_from_data`), runs the layers (``encoder[0]`` is the first linear layer) and
    splits the 2K outputs into the means and the log-variances. It does not check x: the public
    methods of :class:`NLGM` do that once per call.

    Parameters
    ----------
    data_dim, latent_dim : int
        d and K.
    hidden : tuple of int
        Widths of the hidden layers; ``()`` makes mu and logvar affine in x.
    activation : {"relu", "tanh"}
    n_extra : int
        Outputs after mu and logvar that a richer posterior needs (:mod:`nlgm.posterior`).
    """

    def __init__(self, data_dim, latent_dim, hidden, activation, n_extra=0):
        super().__init__(*_layers((data_dim, *hidden, 2 * latent_dim + n_extra), activation))
        self.latent_dim = latent_dim
        self.register_buffer("x_shift", torch.zeros(data_dim))
        self.register_buffer("x_scale", torch.ones(data_dim))

    def forward(self, x):
        """(mu, logvar), each of shape (N, K), for x of shape (N, d)."""
        mu, logvar, _ = self.q_parameters(x)
        return mu, logvar

    def q_parameters(self, x):
        """(mu, logvar, extra), shapes (N, K), (N, K) and (N, n_extra), for x of shape (N, d)."""
        out = super().forward((x - self.x_shift) / self.x_scale)
        K = self.latent_dim
        return out[..., :K], out[..., K:2 * K], out[..., 2 * K:]


class NLGM(nn.Module):
    """A nonlinear Gaussian (or Bernoulli) latent-variable model with an amortised encoder.

    Parameters
    ----------
    data_dim : int
        d, the number of features of x.
    latent_dim : int
        K, the number of latent variables (1..d).
    hidden : tuple of int
        Widths of the hidden layers of the encoder (the decoder uses them in reverse). ``()``
        makes the encoder linear in x, as in the linear VAE.
    likelihood : {"gaussian", "bernoulli"}
        p(x | z): N(f(z), D) (eq-gaussian-decoder) for real data, or independent Bernoullis
        with logits f(z) (eq-bernoulli-decoder) for binary data.
    noise : {"isotropic", "diagonal"}
        For the Gaussian likelihood: D = sigma^2 I (one learned variance) or D = diag(D_1..D_d)
        (one per feature, as in factor analysis). Each variance is learned through an
        unconstrained parameter r as D_i = noise_floor + exp(r_i).
    decoder : {"mlp", "linear"}
        f(z) an MLP with the hidden layers, or the linear map A z + b (A = ``decoder.weight``,
        shape (d, K)).
    activation : {"relu", "tanh"}
        The hidden units' nonlinearity.
    noise_floor : float
        The smallest value each D_i can take (data units squared); see ``NOISE_FLOOR``.
    seed : int, optional
        Seed of the initial weights (the global torch seed is left alone). None draws them from
        torch's global generator.
    posterior : {"diagonal", "full", "iaf"}
        The family of q(z | x): a diagonal Gaussian (eq-reparam), a Gaussian with a full
        covariance L L^T (eq-full-q) or a diagonal Gaussian followed by an inverse
        autoregressive flow (eq-iaf-log-q); see :mod:`nlgm.posterior`.

    Attributes
    ----------
    encoder : GaussianEncoder
        x -> (mu, logvar), the parameters of q(z | x) (phi). Its input is standardised by its
        buffers ``x_shift`` and ``x_scale`` (set by :meth:`init_from_data`).
    decoder : torch.nn.Module
        z -> f(z) (Gaussian mean, or Bernoulli logits): an MLP (``torch.nn.Sequential``) or
        ``torch.nn.Linear`` (theta, with ``noise_raw``).
    noise_raw : torch.nn.Parameter, shape (1,) or (d,)
        The unconstrained noise parameter r (Gaussian likelihood only).
    q : torch.nn.Module
        The posterior family (:mod:`nlgm.posterior`); the flow's weights (``"iaf"``) are part
        of phi.

    Examples
    --------
    >>> model = NLGM(64, 8, hidden=(128,), noise="diagonal", seed=0)
    >>> model.init_from_data(X_train)                        # doctest: +SKIP
    >>> history = nlgm.fit(model, X_train, epochs=100)      # doctest: +SKIP
    >>> model.log_likelihood(X_test, n_importance=1000)     # doctest: +SKIP
    """

    def __init__(self, data_dim, latent_dim, *, hidden=(256, 256), likelihood="gaussian",
                 noise="isotropic", decoder="mlp", activation="relu", noise_floor=NOISE_FLOOR,
                 seed=None, posterior="diagonal"):
        super().__init__()
        data_dim = check_positive_int(data_dim, "data_dim")
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, (int, np.integer)):
            raise TypeError(f"latent_dim must be an integer between 1 and {data_dim}; got {latent_dim!r}.")
        if not 1 <= latent_dim <= data_dim:
            raise ValueError(f"latent_dim must be between 1 and data_dim={data_dim}; got {latent_dim}.")
        if isinstance(hidden, (int, np.integer)):
            hidden = (hidden,)
        try:
            hidden = tuple(check_positive_int(h, "each hidden width") for h in hidden)
        except TypeError:
            raise TypeError(f"hidden must be a tuple of positive integers; got {hidden!r}.") from None
        check_option(likelihood, "likelihood", ("gaussian", "bernoulli"))
        check_option(noise, "noise", ("isotropic", "diagonal"))
        check_option(decoder, "decoder", ("mlp", "linear"))
        check_option(activation, "activation", tuple(ACTIVATIONS))
        check_option(posterior, "posterior", POSTERIORS)
        noise_floor = check_positive(noise_floor, "noise_floor")
        seed = check_seed(seed, optional=True)

        self.config = dict(data_dim=data_dim, latent_dim=int(latent_dim), hidden=hidden,
                           likelihood=likelihood, noise=noise, decoder=decoder,
                           activation=activation, noise_floor=noise_floor, seed=seed,
                           posterior=posterior)
        self.data_dim, self.latent_dim = data_dim, int(latent_dim)
        self.likelihood, self.noise_floor = likelihood, noise_floor
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            self.q = make_posterior(posterior, self.latent_dim)
            self.encoder = GaussianEncoder(data_dim, self.latent_dim, hidden, activation,
                                           self.q.extra_outputs(self.latent_dim))
            if decoder == "linear":
                self.decoder = nn.Linear(self.latent_dim, data_dim)
            else:
                self.decoder = nn.Sequential(
                    *_layers((self.latent_dim, *hidden[::-1], data_dim), activation))
        if likelihood == "gaussian":
            self.noise_raw = nn.Parameter(torch.zeros(1 if noise == "isotropic" else data_dim))

    # ----------------------------------------------------------------- parameters
    def encoder_parameters(self):
        """phi: the encoder's weights (and the flow's, for ``posterior="iaf"``)."""
        return list(self.encoder.parameters()) + list(self.q.parameters())

    def decoder_parameters(self):
        """theta: the decoder's weights and the noise variances."""
        theta = list(self.decoder.parameters())
        if self.likelihood == "gaussian":
            theta.append(self.noise_raw)
        return theta

    @property
    def noise_logvar(self):
        """log D, shape (1,) (isotropic) or (d,) (diagonal): log(noise_floor + exp(r))."""
        if self.likelihood != "gaussian":
            raise AttributeError("A Bernoulli NLGM has no noise variance.")
        # log(c + exp(r)) = log c + softplus(r - log c): no tensor is made for the constant c,
        # so a training step on a GPU copies nothing from the host.
        log_floor = math.log(self.noise_floor)
        return log_floor + F.softplus(self.noise_raw - log_floor)

    @property
    def noise_variance(self):
        """D, the noise variances, shape (d,) (all equal for isotropic noise); a detached tensor."""
        return torch.exp(self.noise_logvar.detach()).expand(self.data_dim).clone()

    @torch.no_grad()
    def init_from_data(self, X):
        """Start from the data's scale: standardise the encoder's input, set the decoder's output
        bias to the data mean and the noise variances to the data variances.

        With D at the data variance and f(z) at the mean, the model starts as the Gaussian with
        the data's mean and (diagonal) variance, whatever the scale of the data. Variances of
        constant features are raised to ``noise_floor``.

        Parameters
        ----------
        X : array_like or Tensor, shape (N, d), N >= 2

        Returns
        -------
        self
        """
        X = self.check_input(X, "X", min_samples=2)
        mean, var = X.mean(0), X.var(0, correction=0)
        if not torch.isfinite(var).all():
            raise ValueError(
                f"X is too large for the model's {self._dtype_name()}: the variance of a feature "
                f"overflows (largest |x| = {X.abs().max().item():.3g}); rescale X, e.g. "
                "standardise it.")
        return self.init_from_moments(mean, var)

    @torch.no_grad()
    def init_from_moments(self, mean, var):
        """:meth:`init_from_data` from the data's mean and variance (each of shape (d,)), e.g.
        computed in one pass over streamed data (:meth:`nlgm.data.Stream.moments`).

        Returns
        -------
        self
        """
        mean, var = (torch.as_tensor(v).to(**self._like()) for v in (mean, var))
        self.encoder.x_shift.copy_(mean)
        self.encoder.x_scale.copy_(torch.where(var > 0, var.sqrt(), torch.ones_like(var)))
        last = self.decoder if isinstance(self.decoder, nn.Linear) else self.decoder[-1]
        if self.likelihood == "gaussian":
            last.bias.copy_(mean)
            var = var.clamp_min(2 * self.noise_floor)
            if self.noise_raw.numel() == 1:
                var = var.mean().reshape(1)
            self.noise_raw.copy_(torch.log(var - self.noise_floor))
        else:
            p = mean.clamp(1e-3, 1 - 1e-3)
            last.bias.copy_(torch.log(p) - torch.log1p(-p))
        return self

    # ----------------------------------------------------------------- checking input
    def _like(self):
        """dtype and device of the model's tensors."""
        return dict(dtype=self.encoder.x_shift.dtype, device=self.encoder.x_shift.device)

    def _dtype_name(self):
        return str(self._like()["dtype"]).removeprefix("torch.")

    def _as_real_tensor(self, value, name):
        """``value`` (array_like or Tensor) as a tensor of the model's dtype and device; complex,
        non-numeric and non-finite values are refused, as are values that overflow the dtype."""
        _refuse_complex(value, name)
        if isinstance(value, torch.Tensor):
            finite = bool(torch.isfinite(value).all())
        else:
            try:
                array = np.asarray(value, dtype=float)
            except (TypeError, ValueError) as err:
                raise TypeError(f"{name} must be a numeric array; {err}") from None
            finite = bool(np.all(np.isfinite(array)))
            value = torch.from_numpy(array)
        if not finite:
            raise ValueError(f"{name} contains NaN or infinite values; remove or impute them first.")
        tensor = value.to(**self._like())
        if not torch.isfinite(tensor).all():
            raise ValueError(
                f"{name} has values too large for the model's {self._dtype_name()} (largest |value| "
                f"= {value.abs().max().item():.3g}); rescale it, e.g. standardise X.")
        return tensor

    def check_input(self, x, name="x", *, min_samples=1):
        """``x`` as a finite (N, d) tensor of the model's dtype and device, or a clear error.

        The one check of data: the public methods call it once, and the networks, the training
        loop and :meth:`mean_elbo` take the checked tensor (a check of every minibatch would make
        a GPU wait for the host each time).

        Parameters
        ----------
        x : array_like or Tensor, shape (N, d)
        name : str
            The argument's name, for the error message.
        min_samples : int
            The fewest rows allowed.

        Returns
        -------
        Tensor, shape (N, d)
        """
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else None
        if shape is None:
            _refuse_complex(x, name)
            x = check_data(x, name, min_samples=min_samples, n_features=self.data_dim)
        elif len(shape) != 2:
            raise ValueError(f"{name} must be a 2-D tensor of shape (N, d); got shape {shape}.")
        elif shape[1] != self.data_dim:
            raise ValueError(f"{name} has {shape[1]} features (columns) but the model has "
                             f"data_dim={self.data_dim}.")
        elif shape[0] < min_samples:
            raise ValueError(f"{name} needs at least {min_samples} samples (rows); got {shape[0]}.")
        x = self._as_real_tensor(x, name)
        if self.likelihood == "bernoulli" and ((x < 0).any() or (x > 1).any()):
            raise ValueError(f"{name} must lie in [0, 1] for the Bernoulli likelihood (binary data).")
        return x

    # ----------------------------------------------------------------- the two networks
    def encode(self, x):
        """The encoder's q(z | x) = N(mu, diag(exp(logvar))) (for ``posterior="full"`` its
        variances, for ``"iaf"`` the Gaussian before the flow).

        Parameters
        ----------
        x : array_like or Tensor, shape (N, d)

        Returns
        -------
        mu, logvar : Tensor, shape (N, K)
        """
        return self.encoder(self.check_input(x))

    def decode(self, z):
        """The mean of p(x | z): f(z) (Gaussian) or sigmoid(f(z)) (Bernoulli).

        Parameters
        ----------
        z : array_like or Tensor, shape (..., K), finite

        Returns
        -------
        Tensor, shape (..., d)
        """
        z = self._as_real_tensor(z, "z")
        if z.ndim == 0 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"z must have latent_dim={self.latent_dim} columns; got shape "
                             f"{tuple(z.shape)}.")
        return self._mean(z)

    def _mean(self, z):
        f = self.decoder(z)
        return torch.sigmoid(f) if self.likelihood == "bernoulli" else f

    def log_px_given_z(self, x, z):
        """log p(x | z) (eq-gaussian-decoder or eq-bernoulli-decoder).

        Parameters
        ----------
        x : Tensor, shape (N, d)
        z : Tensor, shape (J, N, K) or (N, K)

        Returns
        -------
        Tensor, shape (J, N) or (N,)
        """
        f = self.decoder(z)
        if self.likelihood == "bernoulli":
            return bernoulli_log_likelihood(x, f)
        return gaussian_log_likelihood(x, f, self.noise_logvar)

    def _randn(self, shape, generator):
        return torch.randn(shape, generator=generator, **self._like())

    # ----------------------------------------------------------------- the bound and the likelihood
    def complete(self, x, n_samples=1, *, generator=None, eps=None):
        """Fill in J latent vectors for each row of x from the encoder's q(z | x).

        Implements eq-reparam: z = mu(x) + sigma(x) * eps, eps standard normal, so z is
        differentiable in the encoder's weights phi (for the richer posteriors z = mu + L eps,
        eq-full-q, or the flowed z_T, eq-iaf-log-q). x is not checked (see
        :meth:`check_input`).

        Parameters
        ----------
        x : Tensor, shape (N, d), of the model's dtype and device
        n_samples : int
            J, the samples of z per data point.
        generator : torch.Generator, optional
        eps : Tensor, shape (J, N, K), optional
            The standard-normal noise to use instead of drawing it (then ``n_samples`` and
            ``generator`` are not used): data-parallel training draws a global batch's noise and
            gives each process its rows' share.

        Returns
        -------
        Completion
            The tuple (mu, logvar, z), mu and logvar of shape (N, K), z of shape (J, N, K), with
            the KL term of each row, ``kl`` of shape (N,): closed form (eq-kl-std-normal,
            eq-kl-full) or, for ``posterior="iaf"``, the J samples' mean of
            log q(z | x) - log p(z).
        """
        mu, logvar, extra = self.encoder.q_parameters(x)
        if eps is None:
            eps = self._randn((n_samples, *mu.shape), generator)
        z, log_q = self.q.sample(mu, logvar, extra, eps)
        return Completion(mu, logvar, z, kl=self.q.kl(mu, logvar, extra, z, log_q))

    def completion_elbo(self, x, completion):
        """The Monte Carlo ELBO of each row of x from its completion (eq-elbo-mc).

        (1/J) sum_j log p(x | z_j) - KL(q(z | x) || N(0, I)), the KL the completion carries
        (closed form, eq-kl-std-normal or eq-kl-full, or Monte Carlo for the flow). The one place the ELBO is assembled: :meth:`forward` and training
        (``nlgm.train.StepLoss``) both call it.

        Parameters
        ----------
        x : Tensor, shape (N, d)
        completion : tuple
            (mu, logvar, z) with ``kl``, from :meth:`complete`.

        Returns
        -------
        Tensor, shape (N,), nats, differentiable in theta and phi
        """
        return monte_carlo_elbo(self.log_px_given_z(x, completion[2]), completion.kl)

    def forward(self, x, n_samples=1, *, generator=None):
        """The Monte Carlo ELBO of each row of x: encode, sample z, decode.

        Implements eq-elbo-mc with J = ``n_samples`` reparameterised draws (eq-reparam) and the
        KL of the posterior family (closed form, eq-kl-std-normal or eq-kl-full; Monte Carlo for
        the flow): :meth:`completion_elbo` of :meth:`complete`.
        ``-model(x).mean()`` is the loss of a training step. x is not checked (see
        :meth:`elbo_samples`).

        Parameters
        ----------
        x : Tensor, shape (N, d), of the model's dtype and device
        n_samples : int
            J, the samples of z per data point.
        generator : torch.Generator, optional

        Returns
        -------
        Tensor, shape (N,), nats, differentiable in theta and phi
        """
        return self.completion_elbo(x, self.complete(x, n_samples, generator=generator))

    def elbo_samples(self, x, n_samples=1, *, generator=None):
        """The Monte Carlo ELBO of each row of x, differentiable in theta and phi.

        :meth:`forward` after checking ``x`` and ``n_samples`` (eq-elbo-mc).

        Parameters
        ----------
        x : array_like or Tensor, shape (N, d)
        n_samples : int
            J, the samples of z per data point.
        generator : torch.Generator, optional

        Returns
        -------
        Tensor, shape (N,), nats
        """
        n_samples = check_positive_int(n_samples, "n_samples")
        return self(self.check_input(x), n_samples, generator=generator)

    @torch.no_grad()
    def elbo(self, x, n_samples=1, *, generator=None):
        """The ELBO (eq-elbo), mean per sample in nats, estimated with J = ``n_samples`` draws.

        Returns
        -------
        float
        """
        n_samples = check_positive_int(n_samples, "n_samples")
        return float(self.mean_elbo(self.check_input(x), n_samples, generator))

    @torch.no_grad()
    def mean_elbo(self, x, n_samples, generator=None):
        """:meth:`elbo` of a checked tensor (:meth:`check_input`), as a 0-d tensor on the
        model's device (reading it as a number makes a GPU wait); rows in chunks, so that many
        samples fit in memory."""
        rows = max(1, _MAX_ELEMENTS // (n_samples * self._width()))
        return torch.cat([self(xb, n_samples, generator=generator) for xb in x.split(rows)]).mean()

    def _width(self):
        """The widest layer a decoder call produces, per sample and row."""
        return max(m.out_features for m in self.modules() if isinstance(m, nn.Linear))

    @torch.no_grad()
    def log_likelihood_samples(self, x, n_importance=1000, *, generator=None):
        """Importance-weighted estimate of log p(x) for each row, the encoder as the proposal.

        Implements eq-iw-loglik with S = ``n_importance`` samples of q(z | x): a lower bound on
        log p(x) in expectation that rises to it as S grows. Rows and samples are processed in
        chunks, so S = 5000 fits in memory.

        Parameters
        ----------
        x : array_like or Tensor, shape (N, d)
        n_importance : int
            S, the importance samples per data point.
        generator : torch.Generator, optional

        Returns
        -------
        Tensor, shape (N,), nats
        """
        S = check_positive_int(n_importance, "n_importance")
        x = self.check_input(x)
        rows = 256
        out = []
        for xb in x.split(rows):
            mu, logvar, extra = self.encoder.q_parameters(xb)
            step = max(1, _MAX_ELEMENTS // (xb.shape[0] * self._width()))
            log_w = []
            for start in range(0, S, step):
                eps = self._randn((min(step, S - start), *mu.shape), generator)
                z, log_q = self.q.sample(mu, logvar, extra, eps)
                log_w.append(self.log_px_given_z(xb, z) + log_prior(z) - log_q)
            out.append(importance_weighted_log_likelihood(torch.cat(log_w)))
        return torch.cat(out)

    def log_likelihood(self, x, n_importance=1000, *, generator=None):
        """log p(x), mean per sample in nats, by importance sampling (eq-iw-loglik).

        Returns
        -------
        float
        """
        return float(self.log_likelihood_samples(x, n_importance, generator=generator).mean())

    # ----------------------------------------------------------------- generating
    @torch.no_grad()
    def sample(self, n, *, noise=True, generator=None):
        """Draw n points from the model: z ~ N(0, I_K), then x ~ p(x | z).

        Parameters
        ----------
        n : int
        noise : bool
            True draws x from p(x | z) (adds e ~ N(0, D), or draws the Bernoullis); False returns
            the mean f(z) (what pictures of VAE samples usually show).
        generator : torch.Generator, optional

        Returns
        -------
        Tensor, shape (n, d)
        """
        n = check_positive_int(n, "n")
        mean = self._mean(self._randn((n, self.latent_dim), generator))
        if not noise:
            return mean
        if self.likelihood == "bernoulli":
            return torch.bernoulli(mean, generator=generator)
        return mean + torch.exp(0.5 * self.noise_logvar) * self._randn(mean.shape, generator)

    @torch.no_grad()
    def reconstruction(self, x):
        """The decoder's mean at the centre of q(z | x), shape (N, d).

        The centre is mu(x) for the Gaussian posteriors, mu(x) pushed through the flow for
        ``posterior="iaf"`` (the sample at eps = 0).
        """
        return self._mean(self.q.centre(*self.encoder.q_parameters(self.check_input(x))))

    # ----------------------------------------------------------------- files
    def save(self, path):
        """Write the configuration and the weights to ``path`` (a torch file)."""
        try:
            torch.save({"config": dict(self.config, hidden=list(self.config["hidden"])),
                        "state": self.state_dict()}, path)
        except (OSError, RuntimeError) as err:  # torch reports a missing folder as RuntimeError
            raise ValueError(f"{path} cannot be written ({load_failure(err)}).") from None

    @classmethod
    def load(cls, path, *, device=None):
        """Read a model written by :meth:`save`."""
        try:
            saved = torch.load(path, map_location=device or "cpu", weights_only=True)
            model = cls(**dict(saved["config"], hidden=tuple(saved["config"]["hidden"])))
            model.load_state_dict(saved["state"])
        except (OSError, KeyError, RuntimeError, TypeError, ValueError, EOFError, pickle.UnpicklingError) as err:
            raise ValueError(f"{path} is not a saved NLGM ({load_failure(err)}).") from None
        return model.to(device or "cpu")
