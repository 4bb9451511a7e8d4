"""jrec.examples.vae_digits (the REC-bottleneck VAE): lossless coding, rate near the ELBO's KL."""

from __future__ import annotations

import pytest

from jrec.examples import vae_digits


@pytest.mark.slow
def test_vae_codes_losslessly_near_its_elbo():
    # (notebook 03's quick settings: the same compiled programs, shared through the suite's
    # compilation cache, whichever of the two runs first)
    rows = vae_digits.run(latents=(8,), steps=300, methods=("gprs_bb", "orc"), log=None)
    assert [r["method"] for r in rows] == ["gprs_bb", "orc"]
    assert rows[0]["elbo_bpd"] == rows[1]["elbo_bpd"]  # one trained model, coded two ways
    for row in rows:
        assert row["lossless"]
        # pixels: the ANS stream is within a few bits of the decoder's NLL at the coded latent,
        # which is close to the ELBO's NLL term
        assert row["pixel_bits_per_dim"] < row["nll_bpd"] + 0.3
        # latents: the sampler's index costs at least ~the KL and at most KL + a few bits per block
        gprs = row["method"] == "gprs_bb"
        blocks, per_block = (row["latents"], 6.0) if gprs else (1, vae_digits.KAPPA)
        assert row["latent_bits_per_dim"] >= 0.5 * row["kl_bpd"]
        assert row["latent_bits_per_dim"] <= row["kl_bpd"] + (blocks * per_block + 1) / 64
