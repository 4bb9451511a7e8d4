"""jrec.examples.vae_digits (the REC-bottleneck VAE): lossless coding, rate near the ELBO's KL."""

from __future__ import annotations

import pytest

from jrec.examples import vae_digits


@pytest.mark.parametrize("method", ["gprs_bb", "orc"])
def test_vae_codes_losslessly_near_its_elbo(method):
    (row,) = vae_digits.run(latents=(4,), steps=150, methods=(method,), log=None)
    assert row["lossless"]
    # pixels: the ANS stream is within a few bits of the decoder's NLL at the coded latent,
    # which is close to the ELBO's NLL term
    assert row["pixel_bits_per_dim"] < row["nll_bpd"] + 0.3
    # latents: the sampler's index costs at least ~the KL and at most KL + a few bits per block
    blocks = 4 if method == "gprs_bb" else 1
    per_block = 6.0 if method == "gprs_bb" else vae_digits.KAPPA
    assert row["latent_bits_per_dim"] >= 0.5 * row["kl_bpd"]
    assert row["latent_bits_per_dim"] <= row["kl_bpd"] + (blocks * per_block + 1) / 64
