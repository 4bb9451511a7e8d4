"""Worked examples built on jrec's public API (not part of the core API).

* :mod:`jrec.examples.vae_digits`: a VAE whose latent goes through
  :class:`jrec.nn.GaussianBottleneck`, coded losslessly (needs scikit-learn).
"""

__all__ = ["vae_digits"]
