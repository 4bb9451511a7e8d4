"""Distribution helpers shared by the samplers: tails, quantiles, interval masses.

distrax distributions expose ``log_prob``, ``cdf`` and ``sample``; REC algorithms
additionally need accurate upper tails, the inverse CDF, the probability of an
interval (also when it is tiny or deep in a tail) and sampling restricted to an
interval. This module provides those, with closed forms for the families jrec
knows (Normal, Uniform, Laplace, Logistic, :class:`Triangular`) and a bisection
fallback for any other 1-D distribution with a ``cdf``.

It also defines :class:`Triangular`, a distrax distribution used as a test and
example target (its GPRS stretch function has a closed form).
"""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy import special

__all__ = [
    "Triangular",
    "cdf",
    "sf",
    "quantile",
    "isf",
    "support",
    "interval_mass",
    "truncated_quantile",
    "dtype_of",
    "gauss_legendre",
    "FAMILIES",
]

_BISECT_ITERS = 80


def dtype_of(dist) -> jnp.dtype:
    """Floating dtype of a distribution's parameters (float32 unless x64 is on)."""
    leaves = [x for x in jax.tree_util.tree_leaves(dist) if hasattr(x, "dtype")]
    dts = [jnp.asarray(x).dtype for x in leaves if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)]
    return jnp.result_type(*dts) if dts else jnp.dtype(jnp.float32)


def gauss_legendre(n: int, dtype=jnp.float32):
    """Gauss-Legendre nodes and weights on [0, 1] (computed in float64, cast)."""
    t, w = np.polynomial.legendre.leggauss(n)
    return jnp.asarray((t + 1) / 2, dtype), jnp.asarray(w / 2, dtype)


class Triangular(distrax.Distribution):
    """Triangular distribution on ``[low, high]`` with mode ``peak``.

    A distrax distribution (jittable pytree) with closed-form ``cdf``,
    ``survival_function`` and quantile; used as a non-Gaussian target.
    """

    equiv_tfp_cls = None

    def __init__(self, low, peak, high):
        super().__init__()
        self._low = jnp.asarray(low)
        dt = jnp.result_type(self._low, peak, high, jnp.float32)
        self._low = self._low.astype(dt)
        self._peak = jnp.asarray(peak, dt)
        self._high = jnp.asarray(high, dt)

    @property
    def low(self):
        return self._low

    @property
    def peak(self):
        return self._peak

    @property
    def high(self):
        return self._high

    @property
    def event_shape(self):
        return ()

    @property
    def batch_shape(self):
        return jnp.broadcast_shapes(self._low.shape, self._peak.shape, self._high.shape)

    def log_prob(self, x):
        a, c, b = self._low, self._peak, self._high
        up = 2 * (x - a) / ((b - a) * (c - a))
        down = 2 * (b - x) / ((b - a) * (b - c))
        p = jnp.where(x < c, up, down)
        inside = (x >= a) & (x <= b)
        return jnp.where(inside & (p > 0), jnp.log(jnp.where(p > 0, p, 1.0)), -jnp.inf)

    def cdf(self, x):
        a, c, b = self._low, self._peak, self._high
        left = (x - a) ** 2 / ((b - a) * (c - a))
        right = 1 - (b - x) ** 2 / ((b - a) * (b - c))
        return jnp.clip(jnp.where(x < c, left, right), 0.0, 1.0)

    def survival_function(self, x):
        a, c, b = self._low, self._peak, self._high
        left = 1 - (x - a) ** 2 / ((b - a) * (c - a))
        right = (b - x) ** 2 / ((b - a) * (b - c))
        return jnp.clip(jnp.where(x < c, left, right), 0.0, 1.0)

    def quantile(self, p):
        a, c, b = self._low, self._peak, self._high
        fc = (c - a) / (b - a)
        left = a + jnp.sqrt(jnp.maximum(p, 0) * (b - a) * (c - a))
        right = b - jnp.sqrt(jnp.maximum(1 - p, 0) * (b - a) * (b - c))
        return jnp.where(p < fc, left, right)

    def _sample_n(self, key, n):
        shape = (n,) + tuple(self.batch_shape)
        u = jax.random.uniform(key, shape, dtype=self._low.dtype)
        return self.quantile(u)

    def mean(self):
        return (self._low + self._peak + self._high) / 3

    def mode(self):
        return self._peak

    def stddev(self):
        a, c, b = self._low, self._peak, self._high
        return jnp.sqrt((a * a + b * b + c * c - a * b - a * c - b * c) / 18)


def support(dist, dtype=None):
    """Closed support ``(lo, hi)`` of a 1-D distribution (infinite if unbounded).

    In ``dtype`` if given (the samplers' working dtype), else the distribution's.
    """
    dt = dtype_of(dist)
    if isinstance(dist, distrax.Uniform):
        lo, hi = dist.low.astype(dt), dist.high.astype(dt)
    elif isinstance(dist, Triangular):
        lo, hi = dist.low, dist.high
    elif isinstance(dist, distrax.Beta):
        lo, hi = jnp.zeros((), dt), jnp.ones((), dt)
    elif isinstance(dist, distrax.Gamma):
        lo, hi = jnp.zeros((), dt), jnp.asarray(jnp.inf, dt)
    else:
        lo, hi = jnp.asarray(-jnp.inf, dt), jnp.asarray(jnp.inf, dt)
    if dtype is None:
        return lo, hi
    return jnp.asarray(lo).astype(dtype), jnp.asarray(hi).astype(dtype)


def cdf(dist, x):
    """CDF, exact in the lower tail."""
    if isinstance(dist, distrax.Normal):
        return special.ndtr((x - dist.loc) / dist.scale)
    return dist.cdf(x)


def sf(dist, x):
    """Survival function 1 - CDF, computed without cancellation in the upper tail."""
    if isinstance(dist, distrax.Normal):
        return special.ndtr((dist.loc - x) / dist.scale)
    if isinstance(dist, distrax.Uniform):
        return jnp.clip((dist.high - x) / (dist.high - dist.low), 0.0, 1.0)
    if isinstance(dist, distrax.Laplace):
        z = (x - dist.loc) / dist.scale
        return jnp.where(z > 0, 0.5 * jnp.exp(-z), 1 - 0.5 * jnp.exp(z))
    if isinstance(dist, distrax.Logistic):
        return jax.nn.sigmoid(-(x - dist.loc) / dist.scale)
    return dist.survival_function(x)


def _bisect(fn, target, lo, hi, increasing: bool):
    """Solve fn(x) = target on [lo, hi] by bisection (fixed iteration count)."""
    target = jnp.asarray(target)
    dt = jnp.result_type(target.dtype, jnp.float32)
    lo = jnp.broadcast_to(lo, target.shape).astype(dt)
    hi = jnp.broadcast_to(hi, target.shape).astype(dt)

    def body(_, lohi):
        lo, hi = lohi
        mid = 0.5 * (lo + hi)
        above = fn(mid) >= target
        go_left = above if increasing else ~above
        return jnp.where(go_left, lo, mid), jnp.where(go_left, mid, hi)

    lo, hi = jax.lax.fori_loop(0, _BISECT_ITERS, body, (lo, hi))
    return 0.5 * (lo + hi)


def _finite_bracket(dist):
    lo, hi = support(dist)
    mean, std = dist.mean(), dist.stddev()
    lo = jnp.where(jnp.isfinite(lo), lo, mean - 40 * std)
    hi = jnp.where(jnp.isfinite(hi), hi, mean + 40 * std)
    return lo, hi


def quantile(dist, p):
    """Inverse CDF; accurate for small ``p`` (use :func:`isf` for the upper tail)."""
    p = jnp.asarray(p)
    if isinstance(dist, distrax.Normal):
        return dist.loc + dist.scale * special.ndtri(p)
    if isinstance(dist, distrax.Uniform):
        return dist.low + p * (dist.high - dist.low)
    if isinstance(dist, distrax.Laplace):
        return dist.loc + dist.scale * jnp.where(
            p < 0.5, jnp.log(2 * p), -jnp.log(2 * (1 - p))
        )
    if isinstance(dist, distrax.Logistic):
        return dist.loc + dist.scale * (jnp.log(p) - jnp.log1p(-p))
    if isinstance(dist, Triangular):
        return dist.quantile(p)
    lo, hi = _finite_bracket(dist)
    return _bisect(lambda x: cdf(dist, x), p, lo, hi, increasing=True)


def isf(dist, s):
    """Inverse survival function: x with sf(x) = s, accurate for small ``s``."""
    s = jnp.asarray(s)
    if isinstance(dist, distrax.Normal):
        return dist.loc - dist.scale * special.ndtri(s)
    if isinstance(dist, distrax.Uniform):
        return dist.high - s * (dist.high - dist.low)
    if isinstance(dist, distrax.Laplace):
        return dist.loc + dist.scale * jnp.where(
            s < 0.5, -jnp.log(2 * s), jnp.log(2 * (1 - s))
        )
    if isinstance(dist, distrax.Logistic):
        return dist.loc + dist.scale * (jnp.log1p(-s) - jnp.log(s))
    if isinstance(dist, Triangular):
        a, c, b = dist.low, dist.peak, dist.high
        sc = (b - c) / (b - a)
        right = b - jnp.sqrt(jnp.maximum(s, 0) * (b - a) * (b - c))
        left = a + jnp.sqrt(jnp.maximum(1 - s, 0) * (b - a) * (c - a))
        return jnp.where(s < sc, right, left)
    lo, hi = _finite_bracket(dist)
    return _bisect(lambda x: sf(dist, x), s, lo, hi, increasing=False)


_GL_NODES = 8
_NEWTON_ITERS = 6


def _tail_split(dist, a, b):
    """Probabilities of ``[a, b]`` measured from the tail where they do not cancel.

    Returns ``(upper, f_lo, f_hi, small)``: with ``upper`` (``a`` above the median)
    ``f_hi = sf(a)``, ``f_lo = sf(b)``, else ``f_lo = cdf(a)``, ``f_hi = cdf(b)``; the
    mass is ``f_hi - f_lo``. ``small``: the interval holds < 1/4 of that tail, so the
    difference loses digits while the density varies little across the interval
    (quadrature is accurate instead).
    """
    if isinstance(dist, distrax.Normal):  # by reflection: two ndtr instead of four
        za, zb = (a - dist.loc) / dist.scale, (b - dist.loc) / dist.scale
        upper = za > 0
        f_lo = special.ndtr(jnp.where(upper, -zb, za))
        f_hi = special.ndtr(jnp.where(upper, -za, zb))
    else:
        c_a = cdf(dist, a)
        upper = c_a > 0.5
        f_lo = jnp.where(upper, sf(dist, b), c_a)
        f_hi = jnp.where(upper, sf(dist, a), cdf(dist, b))
    small = (f_hi - f_lo < 0.25 * f_hi) & jnp.isfinite(a) & jnp.isfinite(b)
    return upper, f_lo, f_hi, small


def _gl_mass(dist, a, b):
    """Gauss-Legendre integral of the density over finite [a, b]."""
    t, w = gauss_legendre(_GL_NODES, jnp.result_type(a, b))
    xs = a[..., None] + (b - a)[..., None] * t
    dens = jnp.exp(jnp.moveaxis(dist.log_prob(jnp.moveaxis(xs, -1, 0)), 0, -1))
    return (b - a) * jnp.sum(w * dens, axis=-1)


def _finite(x):
    return jnp.where(jnp.isfinite(x), x, 0.0)


def interval_mass(dist, a, b):
    """Probability of ``[a, b]`` under ``dist``, accurate in both tails and for tiny intervals.

    Differences of CDFs are taken in the tail where they do not cancel; when the
    interval holds much less mass than that tail (so the difference would lose
    digits), the density is integrated directly with Gauss-Legendre quadrature,
    which is accurate exactly there because the density varies little across
    such an interval.
    """
    a = jnp.asarray(a)
    b = jnp.maximum(a, b)
    _, f_lo, f_hi, small = _tail_split(dist, a, b)
    quad = _gl_mass(dist, _finite(a), _finite(b))
    return jnp.clip(jnp.where(small, quad, f_hi - f_lo), 0.0, 1.0)


def truncated_quantile(dist, a, b, u):
    """The point of ``dist`` restricted to ``[a, b]`` at relative probability ``u``.

    With ``u ~ U(0, 1)`` this samples ``dist`` conditioned on the interval: by the
    inverse CDF in whichever tail keeps the precision, or, for a small interval
    (see :func:`interval_mass`), by Newton's method on the CDF measured from ``a``
    by quadrature, so that the resolution is that of the interval itself rather
    than of the global CDF (branch and bound shrinks intervals far below it).
    The result lies in ``[a, b]``.
    """
    a = jnp.asarray(a)
    upper, f_lo, f_hi, small = _tail_split(dist, a, b)
    prob = jnp.where(upper, f_hi - u * (f_hi - f_lo), f_lo + u * (f_hi - f_lo))
    if isinstance(dist, distrax.Normal):
        x_global = dist.loc + jnp.where(upper, -dist.scale, dist.scale) * special.ndtri(prob)
    else:
        x_global = jnp.where(upper, isf(dist, prob), quantile(dist, prob))
    af, bf = _finite(a), _finite(b)
    target = u * _gl_mass(dist, af, bf)

    def newton(_, x):
        f = _gl_mass(dist, af, x) - target
        dens = jnp.exp(dist.log_prob(x))
        step = jnp.where(dens > 0, f / jnp.where(dens > 0, dens, 1.0), 0.0)
        return jnp.clip(x - step, af, bf)

    x_local = jax.lax.fori_loop(0, _NEWTON_ITERS, newton, af + u * (bf - af))
    x = jnp.where(small, x_local, x_global)
    return jnp.clip(x, a, b)


#: The distribution families the checked API (:mod:`jrec.api`) batches and the ``.jrec``
#: container (:mod:`jrec.bitstream`) fingerprints: their parameters, by attribute name.
#: (The pure samplers take any distrax distribution; the checked API rebuilds these from
#: their parameters inside vmap, because some distrax classes keep a static batch shape.)
FAMILIES = {
    distrax.Normal: ("loc", "scale"),
    distrax.Uniform: ("low", "high"),
    distrax.Laplace: ("loc", "scale"),
    distrax.Logistic: ("loc", "scale"),
    distrax.Beta: ("alpha", "beta"),
    Triangular: ("low", "peak", "high"),
}
