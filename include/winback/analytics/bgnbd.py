"""The BG/NBD "buy till you die" model: is a client still buying, and how much will they buy?

A lost client rarely says so: they just stop ordering. The BG/NBD model of Fader, Hardie & Lee
(2005), "'Counting Your Customers' the Easy Way: An Alternative to the Pareto/NBD Model",
Marketing Science 24(2), 275-284, turns each client's purchase history into the probability
that they are still "alive" (still buying), which an early-warning list can rank on. It assumes:

- while alive, a client buys as a Poisson process with rate ``lambda``; across clients
  ``lambda ~ Gamma(shape r, rate alpha)``;
- right after each *repeat* purchase the client drops out for good with probability ``p``;
  across clients ``p ~ Beta(a, b)``; ``lambda`` and ``p`` are independent.

Under these assumptions three numbers per client carry all the information (they are
sufficient statistics), so callers pass numpy arrays of them, one element per client:

- ``frequency`` ``x``: the number of repeat purchases, i.e. purchases after the first one;
- ``recency`` ``t_x``: the time of the last purchase, measured from the first purchase
  (0 when ``x = 0``);
- ``age`` ``T``: the time from the first purchase to the end of the observation period.

``t_x``, ``T`` and a forecast horizon ``t`` must be in one time unit, and ``alpha`` is then in
that unit too. The pipeline will use weeks (as the paper does: its CDNOW estimates are
r = 0.243, alpha = 4.414, a = 0.793, b = 2.426 with time in weeks), computed from dates as
days / 7. Count as purchases the days with a purchase, not the orders: two orders on the
first day would be a repeat purchase at ``t_x = 0``, which ``fit`` refuses (see there why).

BG/NBD rather than the Pareto/NBD model it approximates: its likelihood is closed-form with
nothing worse than Gamma and Beta functions, so fitting tens of thousands of clients takes a
fraction of a second. The price: dropout can only happen right after a repeat purchase, so a
client without one (``x = 0``) is alive with probability exactly 1 (see ``probability_alive``).

Numpy arrays in, numpy arrays out, vectorised; pandas is not needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.integrate import quad
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

FloatArray = NDArray[np.float64]

# Bounds of the log-parameters during the fit (exp(+-25)), and the estimate beyond which a
# parameter is taken to be running off to 0 or infinity rather than converging (exp(+-15),
# i.e. 3e-7 or 3e6: far outside anything a real customer base gives, time in weeks or days).
_LOG_BOUND = 25.0
_LOG_DIVERGED = 15.0
# L-BFGS-B may stop with "ABNORMAL" when the line search cannot improve on a point it has
# already converged to (the objective is flat to rounding there); such a point is accepted
# when the gradient of the mean log-likelihood is this small.
_GRADIENT_TOLERANCE = 1e-5
# Within this distance of a = 1, eq. (10) is 0/0 (see ``expected_purchases``).
_A_NEAR_ONE = 1e-6


@dataclass(frozen=True)
class BgNbdParams:
    """The four population parameters of the BG/NBD model (all > 0).

    ``r`` and ``alpha``: shape and rate of the Gamma distribution of purchase rates (the mean
    rate is ``r / alpha`` purchases per time unit). ``a`` and ``b``: the Beta distribution of
    dropout probabilities (the mean probability of dropping out after a purchase is ``a / (a + b)``).
    """

    r: float
    alpha: float
    a: float
    b: float

    def __post_init__(self) -> None:
        for name in ("r", "alpha", "a", "b"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"BG/NBD parameter {name} must be a finite number > 0, got {value!r}")


# ----------------------------------------------------------------------------- input checks
def _as_float_array(name: str, values: ArrayLike) -> FloatArray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numbers, got {values!r:.80}") from exc
    bad = ~np.isfinite(array)
    if bad.any():
        raise ValueError(f"{name} must be finite numbers: {_rows(bad)} are NaN or infinite")
    return array


def _rows(mask: NDArray[np.bool_]) -> str:
    """``'3 rows, the first at index 17'``: where a check failed, for the error message."""
    flat = np.flatnonzero(mask.ravel())
    return f"{flat.size} row{'s' if flat.size != 1 else ''}, the first at index {int(flat[0])}"


def _client_arrays(frequency: ArrayLike, recency: ArrayLike, age: ArrayLike) -> tuple[FloatArray, ...]:
    """The three per-client arrays as float arrays of one shape, or a ValueError saying what is wrong.

    The likelihood would happily evaluate inconsistent summaries (it does not look at ``t_x``
    when ``x = 0``, for example), so wrong inputs are refused here rather than silently fitted.
    """
    x = _as_float_array("frequency", frequency)
    t_x = _as_float_array("recency", recency)
    age_ = _as_float_array("age", age)
    if not x.shape == t_x.shape == age_.shape:
        raise ValueError(
            f"frequency, recency and age must have the same shape, got {x.shape}, {t_x.shape} and {age_.shape}")
    for name, array in (("frequency", x), ("recency", t_x), ("age", age_)):
        negative = array < 0
        if negative.any():
            raise ValueError(f"{name} must not be negative: {_rows(negative)}")
    fractional = x != np.floor(x)
    if fractional.any():
        raise ValueError(f"frequency counts repeat purchases and must be a whole number: {_rows(fractional)}")
    after_end = t_x > age_
    if after_end.any():
        i = int(np.flatnonzero(after_end.ravel())[0])
        raise ValueError(
            "recency (time of the last purchase since the first) must not exceed age (time from the first "
            f"purchase to the end of observation): {_rows(after_end)} (recency={t_x.ravel()[i]}, "
            f"age={age_.ravel()[i]})")
    no_repeat_but_recent = (x == 0) & (t_x != 0)
    if no_repeat_but_recent.any():
        raise ValueError(
            "recency must be 0 for a client without repeat purchases (frequency 0): recency is measured from "
            f"the first purchase, not from the start of observation: {_rows(no_repeat_but_recent)}")
    return x, t_x, age_


def _weights(weights: ArrayLike | None, shape: tuple[int, ...]) -> FloatArray | None:
    if weights is None:
        return None
    w = _as_float_array("weights", weights)
    if w.shape != shape:
        raise ValueError(f"weights must have the shape of frequency, {shape}, got {w.shape}")
    negative = w < 0
    if negative.any():
        raise ValueError(f"weights (counts of identical clients) must not be negative: {_rows(negative)}")
    return w


# ----------------------------------------------------------------------------- likelihood
def _log_terms(
    r: float, alpha: float, a: float, b: float, x: FloatArray, t_x: FloatArray, age: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The logarithms of the pieces of eq. (6), per client.

    Eq. (6) is ``L = A1 * A2 * (A3 + [x > 0] * A4)`` with
    ``A1 = Gamma(r + x) alpha^r / Gamma(r)``, ``A2 = B(a, b + x) / B(a, b)``,
    ``A3 = (alpha + T)^-(r + x)`` and ``A4 = a / (b + x - 1) * (alpha + t_x)^-(r + x)`` (the paper's
    ``B(a + 1, b + x - 1) / B(a, b + x)`` written out). A3 is the client still alive at T,
    A4 the client having dropped out right after the last purchase. Returned: ``log(A1 A2)``,
    ``log A3`` and ``log A4`` (``-inf`` where ``x = 0``); adding A3 and A4 in log space
    (``logaddexp``) keeps large ``x`` and ``T`` from underflowing to log(0).
    """
    repeat = x > 0
    log_a1_a2 = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + betaln(a, b + x) - betaln(a, b)
    log_a3 = -(r + x) * np.log(alpha + age)
    # b + x - 1 can be <= 0 only where x = 0, where A4 is not used: log(1) there, then -inf.
    log_a4 = np.where(
        repeat, np.log(a) - np.log(np.where(repeat, b + x - 1, 1.0)) - (r + x) * np.log(alpha + t_x), -np.inf)
    return log_a1_a2, log_a3, log_a4


def log_likelihood(
    params: BgNbdParams, frequency: ArrayLike, recency: ArrayLike, age: ArrayLike, *, weights: ArrayLike | None = None
) -> float:
    """The log-likelihood of the clients' histories under ``params``: the sum over clients of the log of eq. (6).

    Eq. (6) is the individual likelihood with ``lambda`` and ``p`` integrated out over their
    Gamma and Beta distributions, so it only needs ``(x, t_x, T)`` per client. ``weights``
    (optional) counts identical clients: a row with weight 3 counts as three clients.
    """
    x, t_x, age_ = _client_arrays(frequency, recency, age)
    w = _weights(weights, x.shape)
    log_a1_a2, log_a3, log_a4 = _log_terms(params.r, params.alpha, params.a, params.b, x, t_x, age_)
    per_client = log_a1_a2 + np.logaddexp(log_a3, log_a4)
    return float(per_client.sum() if w is None else (w * per_client).sum())


def _negative_mean_log_likelihood(
    log_params: FloatArray, x: FloatArray, t_x: FloatArray, age: FloatArray, w: FloatArray, total: float
) -> tuple[float, FloatArray]:
    """What ``fit`` minimises: minus the (weighted) mean of log eq. (6), and its gradient in the log-parameters.

    The analytic gradient (digamma for the derivatives of the log-Gamma and log-Beta terms)
    saves L-BFGS-B the 4 extra likelihood evaluations per step that finite differences cost.
    The mean rather than the sum keeps the optimiser's tolerances independent of the sample size.
    """
    r, alpha, a, b = np.exp(log_params)
    log_a1_a2, log_a3, log_a4 = _log_terms(r, alpha, a, b, x, t_x, age)
    log_a3_or_a4 = np.logaddexp(log_a3, log_a4)
    per_client = log_a1_a2 + log_a3_or_a4
    # Shares of A3 (alive at T) and A4 (dropped out after t_x) in A3 + A4.
    share_a3 = np.exp(log_a3 - log_a3_or_a4)
    share_a4 = np.exp(log_a4 - log_a3_or_a4)
    repeat = x > 0
    log_alpha_t = np.log(alpha + age)
    log_alpha_tx = np.log(alpha + t_x)
    d_r = digamma(r + x) - digamma(r) + np.log(alpha) - share_a3 * log_alpha_t - share_a4 * log_alpha_tx
    d_alpha = r / alpha - (r + x) * (share_a3 / (alpha + age) + share_a4 / (alpha + t_x))
    d_a = digamma(a + b) - digamma(a + b + x) + share_a4 / a
    d_b = (digamma(b + x) - digamma(a + b + x) - digamma(b) + digamma(a + b)
           - share_a4 / np.where(repeat, b + x - 1, 1.0))
    # Weighted sums with (w * v).sum(), not w @ v: a BLAS dot product starts threads, and on a
    # busy 2-core machine waiting for them costs more than the whole likelihood.
    gradient = np.array([(w * d).sum() for d in (d_r, d_alpha, d_a, d_b)]) * np.exp(log_params)  # d/dlog(v) = v d/dv
    return -float((w * per_client).sum()) / total, -gradient / total


def fit(
    frequency: ArrayLike, recency: ArrayLike, age: ArrayLike, *, weights: ArrayLike | None = None
) -> BgNbdParams:
    """Maximum-likelihood estimates of the BG/NBD parameters (the maximum of the sum of log eq. (6)).

    Optimised over the logarithms of the parameters, which keeps them positive without
    constraints and puts small and large values on an even footing; starts from all ones
    (``r = alpha = a = b = 1``, a neutral guess of the right order for time in weeks) and uses
    L-BFGS-B with an analytic gradient. ``weights`` (optional) are counts of identical
    ``(x, t_x, T)`` rows, so callers can fit on grouped data: the result is that of the expanded rows.

    Raises ValueError for empty input, negative or non-finite values, a fractional frequency,
    recency > age, a non-zero recency with frequency 0, no client with a repeat purchase (with
    ``x = 0`` everywhere the dropout process is never observed: no estimate exists), and for
    clients with repeat purchases but recency 0 (see below). Raises RuntimeError when the
    optimiser fails, or when a parameter runs off to 0 or infinity: the likelihood then has no
    finite maximum, which happens with small samples (a few dozen clients) or histories too
    uniform to show the heterogeneity the model assumes (a and b together to infinity: every
    client seems to have the same dropout probability; r and alpha: the same purchase rate).

    ``x > 0`` with ``t_x = 0`` says that every repeat purchase was made at the very time of the
    first. The prediction functions accept it (their formulas are finite), but ``fit`` refuses
    it: in continuous time such coincidences have probability 0, and their likelihood term
    ``A1 A2 A4`` of eq. (6) grows like ``alpha^-x`` as ``alpha`` goes to 0, so a single such row
    makes the likelihood unbounded (with ``r`` small enough the sum goes to infinity): there is
    no maximum-likelihood estimate, only whatever local maximum the optimiser stops at. Build
    the summary so that it cannot happen: count as repeat purchases the later *days* (or
    weeks) with a purchase, not the orders, and measure times in those units; then ``x > 0``
    implies ``t_x >= 1`` day.
    """
    x, t_x, age_ = _client_arrays(frequency, recency, age)
    if x.size == 0:
        raise ValueError("cannot fit the BG/NBD model to no clients (empty frequency, recency and age)")
    w = _weights(weights, x.shape)
    x, t_x, age_ = x.ravel(), t_x.ravel(), age_.ravel()
    w = np.ones_like(x) if w is None else w.ravel()
    total = float(w.sum())
    if total <= 0:
        raise ValueError("weights must not all be 0: there is nothing to fit")
    if not (w[x > 0] > 0).any():
        raise ValueError(
            "cannot fit the BG/NBD model without a single repeat purchase (frequency > 0): dropout happens only "
            "after repeat purchases, so these data carry no information on it")
    coincident = (x > 0) & (t_x == 0)
    if coincident.any():
        raise ValueError(
            "cannot fit the BG/NBD model to clients with repeat purchases at the time of their first purchase "
            f"(frequency > 0 with recency 0): {_rows(coincident)}; the likelihood of such rows has no maximum "
            "(it grows without bound as alpha goes to 0). Count repeat purchases as later days (or weeks) with a "
            "purchase, not as orders, so that frequency > 0 implies recency > 0")

    result = minimize(
        _negative_mean_log_likelihood,
        x0=np.zeros(4),
        args=(x, t_x, age_, w, total),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-_LOG_BOUND, _LOG_BOUND)] * 4,
        options={"maxiter": 1000, "ftol": 1e-12, "gtol": 1e-8},
    )
    if not np.all(np.isfinite(result.x)) or not np.isfinite(result.fun):
        raise RuntimeError(f"the BG/NBD fit failed: {result.message}")
    diverged = [f"{name} -> {'infinity' if v > 0 else '0'}"
                for name, v in zip(("r", "alpha", "a", "b"), result.x, strict=True) if abs(v) > _LOG_DIVERGED]
    if diverged:
        raise RuntimeError(
            f"the BG/NBD likelihood of these clients has no finite maximum ({', '.join(diverged)}): too few "
            "clients, or histories too uniform for the model's heterogeneity in purchase rates and dropout")
    if not result.success and np.max(np.abs(result.jac)) > _GRADIENT_TOLERANCE:
        raise RuntimeError(f"the BG/NBD fit did not converge: {result.message}")
    r, alpha, a, b = (float(v) for v in np.exp(result.x))
    return BgNbdParams(r=r, alpha=alpha, a=a, b=b)


# ----------------------------------------------------------------------------- per-client predictions
def probability_alive(params: BgNbdParams, frequency: ArrayLike, recency: ArrayLike, age: ArrayLike) -> FloatArray:
    """P(alive at T | x, t_x, T): the probability that each client has not dropped out by the end of observation.

    ``1 / (1 + [x > 0] * a / (b + x - 1) * ((alpha + T) / (alpha + t_x))^(r + x))``: the
    reciprocal of the denominator of eq. (10), i.e. A3 / (A3 + A4) in the terms of eq. (6)
    (stated on its own in Fader, Hardie & Lee's note "Computing P(alive) using the BG/NBD model").
    It falls as the silence since the last purchase, ``T - t_x``, grows, and falls faster for
    clients who used to buy often.

    For ``x = 0`` it is exactly 1.0: the BG/NBD model lets a client drop out only right after
    a repeat purchase, so a client who never came back is, in the model, still alive. That is
    an assumption, not evidence; callers ranking clients at risk must rank ``x = 0`` clients
    another way (for example by age, or with ``expected_purchases``).
    """
    x, t_x, age_ = _client_arrays(frequency, recency, age)
    repeat = x > 0
    b_x = np.where(repeat, params.b + x - 1, 1.0)
    log_odds_dead = (np.log(params.a) - np.log(b_x)
                     + (params.r + x) * (np.log(params.alpha + age_) - np.log(params.alpha + t_x)))
    return np.where(repeat, expit(-log_odds_dead), 1.0)


def expected_purchases(
    params: BgNbdParams, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, age: ArrayLike
) -> FloatArray:
    """E[Y(t) | x, t_x, T]: the expected number of purchases of each client in the next ``t`` time units, eq. (10).

    Eq. (10) is ``P(alive) * (a + b + x - 1) / (a - 1) *
    [1 - ((alpha + T) / (alpha + T + t))^(r + x) * 2F1(r + x, b + x; a + b + x - 1; z)]`` with
    ``z = t / (alpha + T + t)``. The product in brackets is evaluated after Euler's transformation
    ``2F1(A, B; C; z) = (1 - z)^(C - A - B) 2F1(C - A, C - B; C; z)`` (DLMF 15.8.1), as
    ``(1 - z)^(a - 1) * 2F1(a + b - 1 - r, a - 1; a + b + x - 1; z)``: the same number, but the
    2F1 as printed grows like ``(1 - z)^-(r + x)`` for frequent buyers over long horizons and
    overflows, while this one stays bounded. Two cases need more:

    - at ``a = 1`` eq. (10) is 0/0 (a removable singularity): within 1e-6 of it the value is
      interpolated between ``a = 1 -+ 1e-6``;
    - scipy's 2F1 returns nan or inf for large ``x`` with ``z`` near 1 when ``r - a`` is a whole
      number (e.g. r = 2, a = 3); those clients are computed by numerical integration instead
      (``_expected_if_alive_by_integration``), one at a time.

    ``t`` is a number or an array broadcastable against the client arrays, in their time unit;
    ``t = 0`` gives 0.
    """
    x, t_x, age_ = _client_arrays(frequency, recency, age)
    horizon = _as_float_array("t", t)
    negative = horizon < 0
    if negative.any():
        raise ValueError(f"t (the forecast horizon) must not be negative: {_rows(negative)}")
    alive = probability_alive(params, x, t_x, age_)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    # 1 - z, computed as a ratio rather than by subtraction: exact 1 at t = 0.
    one_minus_z = (alpha + age_) / (alpha + age_ + horizon)
    z = horizon / (alpha + age_ + horizon)

    def if_alive(a_: float) -> FloatArray:
        tail = one_minus_z ** (a_ - 1) * hyp2f1(a_ + b - 1 - r, a_ - 1, a_ + b + x - 1, z)
        return (a_ + b + x - 1) / (a_ - 1) * (1 - tail)

    with np.errstate(invalid="ignore", over="ignore"):  # failures of 2F1 are caught below
        if abs(a - 1) < _A_NEAR_ONE:
            below, above = if_alive(1 - _A_NEAR_ONE), if_alive(1 + _A_NEAR_ONE)
            expected_if_alive = below + (a - (1 - _A_NEAR_ONE)) / (2 * _A_NEAR_ONE) * (above - below)
        else:
            expected_if_alive = if_alive(a)
    failed = ~np.isfinite(expected_if_alive)
    if failed.any():
        expected_if_alive = np.array(expected_if_alive, dtype=np.float64)  # writable, full shape
        x_b, age_b, t_b = np.broadcast_arrays(x, age_, horizon)
        for i in zip(*np.nonzero(failed), strict=True):
            expected_if_alive[i] = _expected_if_alive_by_integration(params, x_b[i], age_b[i], t_b[i])
    return alive * expected_if_alive


def _expected_if_alive_by_integration(params: BgNbdParams, x: float, age: float, t: float) -> float:
    """The second factor of eq. (10), E[purchases in (T, T + t] | alive at T], as the integral it stands for.

    Given alive at T with x repeat purchases, ``lambda ~ Gamma(r + x, rate alpha + T)`` and
    ``p ~ Beta(a, b + x)``, independently (the alive term of eq. (6) is their kernel). An alive
    client buys ``(1 - exp(-lambda p t)) / p`` times in expectation over the next t, which
    averaged over ``lambda`` is ``(1 - (1 + p t / (alpha + T))^-(r + x)) / p``; what is left is
    a 1-D integral over ``p``. Slower than 2F1 (one ``quad`` per client), so only a fallback.
    """
    if t == 0:
        return 0.0
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    log_beta = betaln(a, b + x)
    scale = (alpha + age) / t

    def integrand(p: float) -> float:
        bought = -math.expm1(-(r + x) * math.log1p(p / scale))
        return bought / p * math.exp((a - 1) * math.log(p) + (b + x - 1) * math.log1p(-p) - log_beta)

    # Hints where the integrand changes: around p = scale / (r + x), where the bracket turns
    # from ~0 to ~1, and around the mean of p.
    knee = scale / (r + x)
    points = sorted({min(0.5, k * knee) for k in (0.1, 1.0, 10.0, 100.0)} | {a / (a + b + x)})
    return float(quad(integrand, 0.0, 1.0, points=points, limit=500, epsabs=0.0, epsrel=1e-10)[0])
