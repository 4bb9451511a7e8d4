"""Multi-device encoding and decoding with ``shard_map``.

Two ways to spread REC over the devices of a :class:`jax.sharding.Mesh`:

* :func:`encode` / :func:`decode` split a *batch* of problems along a mesh axis; each
  device runs the lane-refill runner (:func:`jrec.batch.refill`) on its slice. Every
  problem's index depends only on its own key, so results are identical for any number
  of devices (the batch is padded to a multiple of the device count and trimmed).
* :func:`encode_gprs_parallel` splits the ``J`` superposed processes of *parallel GPRS*
  (Flamich, NeurIPS 2023) over the devices: device ``d`` runs ``J / D`` shards of every
  problem and the devices agree on the earliest accepted arrival with ``pmin``
  collectives after every chunk -- the latency of one hard problem drops ~``D``-fold on
  real hardware, with the index ``(j, N_j)`` of single-device ``gprs_parallel``.

Both are pure and jittable (the mesh is static); the default mesh is all devices on one
axis. On CPU, ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` gives 8 devices.
On a multi-host cluster call ``jax.distributed.initialize()`` on every host first and
build the mesh from ``jax.devices()`` (all hosts' devices); inputs are then global
arrays (e.g. ``jax.make_array_from_process_local_data``) and the same call runs SPMD on
every host.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import AxisType, Mesh
from jax.sharding import PartitionSpec as P

from jrec.batch import refill
from jrec.core import Code, run
from jrec.gprs import kernel_parallel, shards_per_device
from jrec.registry import get

__all__ = ["default_mesh", "encode", "decode", "encode_gprs_parallel"]


def default_mesh(axis: str = "batch") -> Mesh:
    """All devices on one mesh axis named ``axis``."""
    return jax.make_mesh((jax.device_count(),), (axis,), axis_types=(AxisType.Auto,))


def _pad(tree, n: int, multiple: int):
    """Pad the leading axis of every leaf to a multiple (repeating the last problem)."""
    extra = (-n) % multiple
    if not extra:
        return tree
    return jax.tree_util.tree_map(
        lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], extra, axis=0)], axis=0), tree)


def _trim(tree, n: int):
    return jax.tree_util.tree_map(lambda x: x[:n], tree)


def _mesh_axis(mesh, axis):
    mesh = default_mesh(axis) if mesh is None else mesh
    if axis not in mesh.axis_names:
        raise ValueError(f"mesh has axes {mesh.axis_names}, not {axis!r}")
    return mesh, mesh.shape[axis]


def encode(method: str, keys, target, proposal, *, mesh: Mesh | None = None, axis: str = "batch",
           lanes: int = 256, proposal_axis=None, **options) -> Code:
    """Encode ``N`` problems split over the devices of ``mesh`` (lane refill on each device).

    Args:
      method: registry name. keys: ``N`` keys (leading axis). target: batched target
        (leading axis ``N``). proposal: shared (``proposal_axis=None``) or batched (``0``).
      mesh, axis: the mesh and the axis the batch is split along (default: all devices).
      lanes: lanes per device. **options: the sampler's static options.

    Returns:
      a :class:`~jrec.core.Code` with leading axis ``N``, identical to
      ``jax.vmap(encode)`` on one device.
    """
    mesh, d = _mesh_axis(mesh, axis)
    kernel = get(method).kernel(**options)
    n = keys.shape[0]
    keys_p, target_p = _pad(keys, n, d), _pad(target, n, d)
    prop_p = _pad(proposal, n, d) if proposal_axis is not None else proposal

    def local(k, t, p):
        return refill(kernel, k, t, p, lanes=lanes, proposal_axis=proposal_axis)

    pspec = P(axis) if proposal_axis is not None else P()
    fn = jax.shard_map(local, mesh=mesh, in_specs=(P(axis), P(axis), pspec), out_specs=P(axis),
                       check_vma=False)
    return _trim(fn(keys_p, target_p, prop_p), n)


def decode(method: str, keys, index, proposal, *, mesh: Mesh | None = None, axis: str = "batch",
           proposal_axis=None, **options):
    """Decode ``N`` indices split over the devices of ``mesh`` (one vmapped call per device)."""
    mesh, d = _mesh_axis(mesh, axis)
    dec = get(method).decode
    n = keys.shape[0]

    def local(k, i, p):
        return jax.vmap(lambda kk, ii, pp: dec(kk, ii, pp, **options),
                        in_axes=(0, 0, proposal_axis))(k, i, p)

    pspec = P(axis) if proposal_axis is not None else P()
    prop_p = _pad(proposal, n, d) if proposal_axis is not None else proposal
    fn = jax.shard_map(local, mesh=mesh, in_specs=(P(axis), P(axis), pspec), out_specs=P(axis),
                       check_vma=False)
    return _trim(fn(_pad(keys, n, d), _pad(index, n, d), prop_p), n)


def encode_gprs_parallel(keys, target, proposal, *, mesh: Mesh | None = None, axis: str = "shards",
                         num_shards: int | None = None, max_steps: int | None = None,
                         chunk_size: int = 8) -> Code:
    """Parallel GPRS with its ``J`` shards spread over the devices of ``mesh``.

    Every device holds every problem (``keys`` and ``target`` with a leading batch axis,
    or a single problem) and runs ``J / D`` of its shards; ``J`` defaults to the device
    count and must be a multiple of it. Returns the same :class:`~jrec.core.Code` as
    ``jrec.gprs.encode_parallel(..., num_shards=J)`` on one device; decode with
    ``jrec.gprs.decode_parallel``.
    """
    mesh, d = _mesh_axis(mesh, axis)
    num_shards = d if num_shards is None else num_shards
    opts = {"num_shards": num_shards, "chunk_size": chunk_size, "axis_name": axis}
    if max_steps is not None:
        opts["max_steps"] = max_steps
    kernel = kernel_parallel(**opts)  # (checks the options)
    shards_per_device(num_shards, d, axis)  # (the kernel checks it when traced: refuse before)
    batched = keys.ndim > (0 if jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key) else 1)

    def local(k, t, p):
        one = lambda kk, tt: run(kernel, kk, tt, p)  # noqa: E731
        return jax.vmap(one)(k, t) if batched else one(k, t)

    fn = jax.shard_map(local, mesh=mesh, in_specs=(P(), P(), P()), out_specs=P(), check_vma=False)
    return fn(keys, target, proposal)
