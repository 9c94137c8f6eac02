"""FLUX models shared by the scene pipelines: the FluxFill core (vistadream's outpainting and coarse
inpainting, worldexplorer's scaffold gaps) and the transformer's speed options. This module imports
no torch, so numpy-only geometry (vistadream's canvas) can share its constants."""

ALIGN = 32
"""FluxFill's sides must be multiples of this: the VAE's 8x and the transformer's 2x2 packing, twice."""
