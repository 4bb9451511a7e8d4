"""Fast elementwise sine and Gaussian noise for fitting the INRs on a CPU.

Fitting is dominated by two elementwise operations, not by the small matrix products:
the SIREN's ``sin`` (and its derivative) at every pixel and hidden unit, and the
local-reparameterisation noise, one standard normal per pixel and unit. XLA's CPU
``sin`` and ``jax.random.normal`` (threefry bits, then an inverse error function) took
about 40 % of a step each on a 2-core CPU; with this module's versions a step is 2.0-2.3x
faster (``benchmarks/fit_speed.py``). They replace JAX's where only the optimiser sees
the result:

- :func:`sin`: Cody-Waite reduction to ``[-pi/2, pi/2]`` and a degree-11 odd polynomial,
  absolute error below ``1e-6`` for ``|x| < 1e4`` (tested), with the matching ``cos`` as
  its derivative.
- :func:`normal`: standard normals by the Box-Muller transform of a counter-based integer
  hash keyed by two words drawn from a JAX key (one threefry call per array, not one
  per element). The hash is ``lowbias32`` (C. Wellons, "Hash function prospector", 2018),
  applied twice with the two key words; the normals pass KS, moment, correlation and
  key-independence tests (``tests/test_fastmath.py``).

Neither is used to decode: the decoder's forward pass (and so every ``.jrec`` file's
pixels) uses ``jnp.sin`` and no noise. The encoder's fit only needs an accurate sine
and good noise, not bit-compatibility with ``jnp.sin`` or threefry.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["sin", "cos", "normal"]

_TWO_PI_HI = np.float32(6.28125)  # 2 pi split for Cody-Waite: hi has few mantissa bits,
_TWO_PI_LO = np.float32(2 * math.pi - 6.28125)  # so k * hi is exact for |k| < 2^15
_INV_TWO_PI = np.float32(1 / (2 * math.pi))
_PI = np.float32(math.pi)
_HALF_PI = np.float32(math.pi / 2)
# Taylor coefficients of sin up to x^11: on [-pi/2, pi/2] the truncation error is
# (pi/2)^13 / 13! < 6e-8, below float32 rounding of the result.
_SIN_COEFFS = tuple(np.float32((-1) ** k / math.factorial(2 * k + 1)) for k in range(6))


def _reduce(x):
    """``x - 2 pi k`` in ``[-pi, pi]`` (Cody-Waite)."""
    x = jnp.asarray(x, jnp.float32)
    k = jnp.round(x * _INV_TWO_PI)
    return (x - k * _TWO_PI_HI) - k * _TWO_PI_LO


def _sin_folded(r):
    """``sin(r)`` for ``r`` in ``[-pi, 3 pi / 2]``: folded to ``[-pi/2, pi/2]``, then the polynomial."""
    r = jnp.where(r > _HALF_PI, _PI - r, jnp.where(r < -_HALF_PI, -_PI - r, r))
    r2 = r * r
    p = _SIN_COEFFS[-1]
    for c in reversed(_SIN_COEFFS[:-1]):
        p = p * r2 + c
    return r * p


@jax.custom_jvp
def sin(x):
    """``sin(x)`` for float32 ``x`` (absolute error < 1e-6 for ``|x| < 1e4``)."""
    return _sin_folded(_reduce(x))


def cos(x):
    """``cos(x)``, as :func:`sin` (``sin(r + pi/2)`` of the reduced argument ``r``)."""
    return _sin_folded(_reduce(x) + _HALF_PI)


@sin.defjvp
def _sin_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return sin(x), cos(x) * t


def _mix(x):
    """lowbias32: a bijective 32-bit integer hash with low bias (Wellons, 2018)."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def _uniform_bits(seed, n: int):
    """``n`` hashed 32-bit words of counters ``0..n-1`` under the two seed words."""
    i = jnp.arange(n, dtype=jnp.uint32)
    return _mix(_mix(i ^ seed[0]) + seed[1])


def normal(key, shape, dtype=jnp.float32):
    """Standard normal array of ``shape`` from ``key`` (Box-Muller on hashed counters)."""
    size = math.prod(shape)
    half = (size + 1) // 2
    seed = jax.random.bits(key, (2,), jnp.uint32)
    bits = _uniform_bits(seed, 2 * half)
    scale = np.float32(2.0**-24)
    u1 = ((bits[:half] >> 8).astype(jnp.float32) + 0.5) * scale  # in (0, 1): log is finite
    u2 = (bits[half:] >> 8).astype(jnp.float32) * scale
    r = jnp.sqrt(-2.0 * jnp.log(u1))
    theta = (2.0 * _PI) * u2 - _PI
    z = jnp.concatenate([r * cos(theta), r * sin(theta)])[:size]
    return z.reshape(shape).astype(dtype)
