"""Comparing a student's result with the reference, with failure messages that teach.

:func:`check_array` checks, in order: that a value came back at all, its type, its shape (expected
versus got, with a hint when it looks transposed or squeezed), NaN and infinities, and then the
values, entry by entry, under a stated tolerance. When values differ it lists the entries that
differ most and tries to name the mistake: first the candidates a test computes for the classic
mistakes of that exercise (a transposed sum, N instead of N - 1, a forgotten 1/2...), then generic
patterns (the wrong sign, a constant factor, a constant offset).

Messages never show a reference value to more digits than a student needs to see the size of the
error: an expected entry to 2 significant digits, a difference to 1, so a submission cannot learn
the reference values from its feedback (and the inputs that decide points change with every grading
run, :func:`pca_to_vae_grader.inputs.rng`). Complex numbers, non-numeric values and NaN or infinity where
the reference is finite are refused with a message.
"""
from contextlib import contextmanager

import numpy as np


class GradingFailure(AssertionError):
    """A test of a submission failed; the message is written for the student."""


def as_array(value, what):
    """``value`` as a float (or complex) numpy array, or a :class:`GradingFailure` that says why not."""
    if value is None:
        raise GradingFailure(f"{what} returned None. Did you forget the return statement?")
    if type(value).__module__.split(".")[0] == "torch":
        value = value.detach().cpu().numpy()
    if isinstance(value, (tuple, list)) and len(value) > 0 and all(np.ndim(v) > 0 for v in value):
        raise GradingFailure(
            f"{what} returned a {type(value).__name__} of {len(value)} arrays where one array was expected."
        )
    if isinstance(value, (str, bytes, dict)):
        raise GradingFailure(f"{what} returned {type(value).__name__}, which is not an array of numbers.")
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        raise GradingFailure(f"{what} returned {type(value).__name__}, which is not an array of numbers.") from None
    if np.iscomplexobj(array):
        raise GradingFailure(
            f"{what} returned complex numbers; real values are expected. A square root or logarithm of a negative "
            "number (np.emath, scipy.linalg.sqrtm, np.linalg.eig of a non-symmetric matrix) makes them: "
            "find where a negative number enters, do not drop the imaginary part.")
    if array.dtype.kind not in "biuf":
        raise GradingFailure(f"{what} returned an array of {array.dtype} values, not an array of numbers.")
    return array.astype(float)


def as_number(value, what):
    """``value`` as a float when it is one number in any form (1.5, np.float32, a 0-d or 1-element array, [1.5])."""
    array = as_array(value, what)
    if array.size != 1:
        raise GradingFailure(f"{what} must be a single number; it has shape {array.shape}.")
    return float(array.reshape(()))


def check_tuple(value, length, what, names):
    """Check that ``value`` is a tuple (or list) of ``length`` items and return it as a tuple."""
    if value is None:
        raise GradingFailure(f"{what} returned None. Did you forget the return statement?")
    if not isinstance(value, (tuple, list)) or len(value) != length:
        got = f"a {type(value).__name__} of length {len(value)}" if isinstance(value, (tuple, list)) else type(value).__name__
        raise GradingFailure(f"{what} must return {length} values ({', '.join(names)}); it returned {got}.")
    return tuple(value)


def _shape_hint(got, expected):
    if got.ndim == 2 and got.T.shape == expected.shape:
        return " It has the expected shape transposed: check which axis holds samples (rows) and which features."
    if got.ndim == 0 and expected.ndim > 0:
        return " You returned a single number: is there a sum over all entries where one value per row is expected?"
    if got.size == expected.size:
        return " It has the right number of entries: check keepdims, a reshape, or a (N, 1) column versus an (N,) vector."
    if expected.ndim >= 1 and got.shape[:1] == expected.shape[-1:]:
        return " Its first axis has the length of the expected last axis: a sum over the wrong axis?"
    return ""


def _entries(index, got, expected, diff, tol, limit=4):
    """The entries that differ most: the student's value, the reference to 2 significant digits, the size
    of the difference (1 significant digit) and how many tolerances it is."""
    rows = []
    for i in index[:limit]:
        where = "" if got.ndim == 0 else f"[{', '.join(str(int(j)) for j in i)}]"
        i = tuple(i)
        times = diff[i] / tol[i] if tol[i] > 0 else np.inf
        rows.append(f"  entry{where}: got {got[i]:.6g}, expected about {expected[i]:.2g} "
                    f"(off by about {diff[i]:.0e}, {times:.0e} times the tolerance)")
    return "\n".join(rows)


def _generic_pattern(got, expected, rtol, atol):
    close = lambda a, b: np.allclose(a, b, rtol=max(rtol, 1e-7), atol=max(atol, 1e-9))
    scale = np.abs(expected).max(initial=0.0)
    if scale > 0 and close(got, -expected):
        return "Your values are the expected ones with the opposite sign: check the sign of each term."
    if got.ndim == 2 and got.shape[0] == got.shape[1] and close(got, expected.T):
        return "Your matrix is the transpose of the expected one: check the order of the factors."
    if got.size == 1:
        return ""  # any two numbers differ by a factor and by an offset: no pattern to name
    nonzero = np.abs(expected) > 1e-12 * max(scale, 1.0)
    if nonzero.any():
        ratio = got[nonzero] / expected[nonzero]
        r = np.median(ratio)
        if np.isfinite(r) and abs(r - 1) > 1e-6 and close(got, r * expected):
            return (f"Your values are the expected ones times about {r:.2g}: a missing or extra constant factor "
                    "(a 1/2, 1/N, or N versus N - 1?).")
    c = np.median(got - expected)
    if abs(c) > 1e-9 and close(got, expected + c):
        return (f"Your values are the expected ones plus a constant of about {c:.2g}: a missing or extra constant term "
                "(such as d/2 log 2 pi)?")
    return ""


def check_array(got, expected, what, *, rtol=1e-8, atol=1e-10, mistakes=()):
    """Fail with a teaching message unless ``got`` equals ``expected`` within the tolerance.

    Parameters
    ----------
    got : array_like
        The student's value.
    expected : array_like
        The reference value.
    what : str
        How to name the value in messages, e.g. ``"gaussian_logpdf(X, mu, Sigma)"``.
    rtol, atol : float
        Entry ``i`` passes when ``|got_i - expected_i| <= atol + rtol * |expected_i|``.
    mistakes : sequence of (str, array_like)
        Classic mistakes: a hint and the value that mistake produces. The first whose value matches
        ``got`` is named in the message.

    Returns
    -------
    ndarray
        ``got`` as an array, for further checks.
    """
    low_precision = _low_precision(got)
    got = as_array(got, what)
    expected = np.asarray(expected, dtype=float)
    if expected.ndim == 0 and got.size == 1:
        got = got.reshape(())  # a number asked for: 1.5, np.float64(1.5), np.array(1.5), [1.5] are all that number
    if got.shape != expected.shape:
        raise GradingFailure(
            f"{what} has the wrong shape: expected {expected.shape}, got {got.shape}.{_shape_hint(got, expected)}"
        )
    bad = ~np.isfinite(got) & np.isfinite(expected)
    if bad.any():
        first = tuple(int(j) for j in np.argwhere(bad)[0]) if got.ndim else ()
        raise GradingFailure(
            f"{what} contains NaN or infinity ({int(bad.sum())} of {got.size} entries, the first at index {list(first)}) "
            "where the expected values are finite. Look for log(0), 0/0, the square root or log of a negative "
            "number, or an overflow (exp of a large number: use logsumexp)."
        )
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(got - expected)
        tol = atol + rtol * np.abs(expected)
    # Where the reference is NaN or infinite, only the same value passes (a NaN is not "within" -inf).
    same = (got == expected) | (np.isnan(got) & np.isnan(expected))
    wrong = np.where(np.isfinite(expected), diff > tol, ~same)
    if not wrong.any():
        return got
    with np.errstate(all="ignore"):  # the message handles infinities and NaN itself
        _fail(got, expected, wrong, diff, tol, what, rtol, atol, mistakes, low_precision)


def _low_precision(value):
    """The name of ``value``'s floating-point type when it keeps fewer digits than float64 (float32, float16)."""
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        try:
            dtype = np.asarray(value).dtype
        except (TypeError, ValueError):
            return None
    name = str(dtype).replace("torch.", "")
    return name if name in ("float32", "float16", "bfloat16", "half") else None


def _fail(got, expected, wrong, diff, tol, what, rtol, atol, mistakes, low_precision=None):
    """Raise the teaching message of :func:`check_array` for the entries marked ``wrong``."""
    order = np.argsort(-np.where(wrong, np.where(np.isnan(diff), np.inf, diff), -1), axis=None)  # NaN first
    index = np.array(np.unravel_index(order, got.shape)).T if got.ndim else np.zeros((1, 0), dtype=int)
    message = [
        f"{what}: {int(wrong.sum())} of {got.size} entries differ from the reference by more than the tolerance "
        f"|got - expected| <= {atol:g} + {rtol:g} |expected|. The largest differences:",
        _entries(index[: int(wrong.sum())], got, expected, diff, tol),
    ]
    for hint, value in mistakes:
        value = np.asarray(value, dtype=float)
        if value.shape == got.shape and np.allclose(got, value, rtol=max(rtol, 1e-6), atol=max(atol, 1e-8)):
            message.append(f"Hint: your values match what you get when you {hint}.")
            break
    else:
        pattern = _generic_pattern(got, expected, rtol, atol)
        if pattern:
            message.append("Hint: " + pattern)
    if low_precision:
        message.append(f"Note: you returned {low_precision} values, which keep about "
                       f"{7 if low_precision == 'float32' else 3} significant digits; compute in float64 "
                       "(numpy's default) to meet the tolerance.")
    raise GradingFailure("\n".join(message))


@contextmanager
def hint_on_failure(symptoms, hint):
    """Add ``hint`` (what a teacher would say) to a failure of the block whose message contains a symptom.

    For failures the submission's own call reports, such as ``("MemoryError", "Time limit")`` for a d x d
    matrix where the exercise needs a K x K one.

    Parameters
    ----------
    symptoms : str or tuple of str
    hint : str
    """
    symptoms = (symptoms,) if isinstance(symptoms, str) else tuple(symptoms)
    try:
        yield
    except GradingFailure as failure:
        if not any(symptom in str(failure) for symptom in symptoms):
            raise
        raise type(failure)(f"{failure}\nHint: {hint}") from None


def check(condition, message):
    """Fail with ``message`` (written for the student) unless ``condition`` holds."""
    if not condition:
        raise GradingFailure(message)


def check_subspace(got, expected, what, *, atol=1e-8, mistakes=()):
    """Fail unless span(got) equals span(expected): the largest principal angle is at most ``atol`` radians.

    Bases of a subspace are not unique (any invertible mix of the columns spans the same space), so
    loadings are compared by principal angles (scipy.linalg.subspace_angles), never entry by entry.

    Parameters
    ----------
    got, expected : array_like, shape (d, K)
        Bases (columns) of the two subspaces.
    what : str
    atol : float
        The largest principal angle accepted, in radians.
    mistakes : sequence of (str, array_like)
        A hint and a basis that the mistake produces; named when span(got) matches it.
    """
    from scipy.linalg import subspace_angles

    got = as_array(got, what)
    expected = np.asarray(expected, dtype=float)
    if got.shape != expected.shape:
        raise GradingFailure(
            f"{what} has the wrong shape: expected {expected.shape} (d, K), got {got.shape}.{_shape_hint(got, expected)}"
        )
    if not np.all(np.isfinite(got)):
        raise GradingFailure(f"{what} contains NaN or infinity. Look for a singular matrix or an overflow.")
    if np.linalg.matrix_rank(got) < got.shape[1]:
        raise GradingFailure(f"The columns of {what} are linearly dependent: they do not span a {got.shape[1]}-dimensional subspace.")
    angle = float(np.max(subspace_angles(got, expected)))
    if angle <= atol:
        return got
    message = [f"The subspace spanned by {what} is not the expected one: the largest principal angle between "
               f"them is {angle:.3g} rad ({np.degrees(angle):.3g} degrees); at most {atol:g} rad is accepted."]
    for hint, basis in mistakes:
        if np.max(subspace_angles(got, np.asarray(basis, dtype=float))) <= max(atol, 1e-6):
            message.append(f"Hint: your subspace is the one you get when you {hint}.")
            break
    raise GradingFailure("\n".join(message))
