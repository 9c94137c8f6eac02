"""FLUX models shared by the scene pipelines: the FluxFill core (vistadream's outpainting and coarse
inpainting, worldexplorer's scaffold gaps) and the transformer's speed options."""
