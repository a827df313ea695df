"""nlgm: the nonlinear road of the book, in PyTorch.

The nonlinear Gaussian model x = f(z; theta) + e with an encoder Q(z | x; phi), the variational
autoencoder, trained by the same "complete, then re-estimate" loop as ``lgm`` (:mod:`lgm.completion`).
"""
