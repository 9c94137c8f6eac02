"""3D Gaussian Splatting on gsplat: the `gaussians` stage, loaders, PLY, multi-scene packing.

Importing this package imports nothing else: the trainer, loaders and PLY code work without the stage
runtime (GPU machines run them with torch and gsplat alone).
"""
