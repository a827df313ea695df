"""Reference solutions for book/exercises/pca.md (kept out of the book): the package's own functions."""
import lgm


def pca_als(X, n_components, n_iter, W0):
    return lgm.pca_als(X, n_components, n_iter, W0=W0)


def principal_angles(U, V):
    return lgm.principal_angles(U, V)
