"""jrec_inr: compression with Bayesian implicit neural representations (COMBINER / RECOMBINER).

Guo, Flamich, He, Chen & Hernandez-Lobato, "Compression with Bayesian implicit neural
representations", NeurIPS 2023. One codec for images, audio, protein backbones and video
(:mod:`jrec_inr.modalities`: reading, writing, normalisation, metrics, baselines of each
kind of signal). A signal is cut into patches; each patch is fitted by
a SIREN whose weights have a Gaussian posterior (:mod:`jrec_inr.model`,
:mod:`jrec_inr.fit`, with the fast sine and noise of :mod:`jrec_inr.fastmath`) against
a prior learned by EM (:mod:`jrec_inr.prior`; RECOMBINER's hierarchical patch prior:
:mod:`jrec_inr.hierarchy`); the weights are coded block by block
with :mod:`jrec.orc`, with progressive fine-tuning, into a ``.jrec`` container
(:mod:`jrec_inr.codec`). Command line: ``jrec-inr`` (:mod:`jrec_inr.cli`). Uses
:mod:`jrec` through its public API only.

Public API::

    from jrec_inr import codec, data, prior
    model = codec.select_model(0.3)                       # a bundled prior
    res = codec.compress(data.load_image("x.png"), model)  # res.data (bytes), res.image, res.stats
    img, info = codec.decompress(res.data)                  # == res.image, bit for bit

    from jrec_inr import modalities
    pdb = modalities.get("protein")
    res = codec.compress(pdb.read("1abc.pdb", residues=96), codec.select_model(35, "protein"))
    pdb.write("decoded.pdb", codec.decompress(res.data))

Rate-distortion on held-out files of any modality: :mod:`jrec_inr.rd`.
"""

__all__ = ["cli", "codec", "data", "fastmath", "fit", "hierarchy", "metrics", "modalities", "model", "prior",
           "rd"]
