"""jrec_inr: Bayesian implicit neural representation codecs (COMBINER / RECOMBINER).

Fits a Bayesian SIREN to an image (later audio, video, protein structures) and codes
its weights block by block with :mod:`jrec` samplers (``jrec.orc`` by default). Not
implemented yet: this package is the place for it (see DESIGN.md section 4); it uses
jrec through its public API only.
"""

__all__: list[str] = []
