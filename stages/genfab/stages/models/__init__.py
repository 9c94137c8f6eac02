"""The model side of the stage runtime: where weights are (`location`), where models run
(`placement`), the model set a stage's `load` opens and loads them into once (`base`), image pre- and
post-processing on the device (`preprocess`), plug-in backends (`plugins`), and the DiFix network with
its checkpoints (`difix`, `difix_checkpoints`), which the tuning pipeline trains and 3DGS refinement
runs.

Importing this package imports nothing; `location` and `plugins` never import torch, `placement`,
`preprocess` and `base` do.
"""
