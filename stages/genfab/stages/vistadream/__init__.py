"""SceneJob `vistadream` (the lab's vistadream document): single image -> outpaint -> depth -> Gaussian scene -> coarse
expansion -> render.

The pipeline is declared in genfab.api.pipelines.vistadream. The pure geometry (canvas, cameras and
masks, trajectories, pose selection, depth alignment) lives in numpy modules here that import no
torch; each stage module is imported when its stage runs.
"""
