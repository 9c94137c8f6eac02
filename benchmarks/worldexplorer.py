"""FLUX text to image at production size (worldexplorer's cardinal views): diffusers' eager
`FluxPipeline.__call__` against genfab's text core (`genfab.stages.flux.text.FluxTextCore`).

FLUX.1-dev's architecture (12B transformer, T5-XXL, CLIP-L, the 16-channel VAE) with random bf16 weights
built on the GPU (no weights can be downloaded here): the timings and memory are the real model's, the
pictures mean nothing. One process, one GPU, the same prompt, seed, steps and guidance (3.5) per
variant. The variants, columns and switches are `benchmarks/vistadream.py`'s (same code, the text task):
`eager` (the baseline, encoding its prompt each call as a user's script does), `core` (genfab's loop,
no option), `blocks`, `fp8+blocks`, `fbc<threshold>+blocks`, ...

    python benchmarks/worldexplorer.py --steps 50 --size 1024 --runs 2 --variants eager,blocks,fp8+blocks

Per-stage seconds and GPU-hours of the worldexplorer pipeline come with its stages.
"""

from __future__ import annotations

from benchmarks.vistadream import TEXT, main

if __name__ == "__main__":
    main(TEXT, __doc__ or "")
