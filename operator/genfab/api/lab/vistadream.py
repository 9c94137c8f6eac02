"""vistadream's comparison with the lab's code (`genfab.api.fidelity`): the page's table."""

from __future__ import annotations

from genfab.api.fidelity import LabComparison, LabRow
from genfab.api.scenejob import VistaDreamConfig

ROWS = (
    LabRow('run',
           lab='`no-outpaint` (default), `outpaint`, `fine`, `coarse`',
           field='stage',
           lab_value='no-outpaint',
           why="`fine` does what `outpaint` does, as in the lab's repository"),
    LabRow('run',
           lab='`tools/run_vistadream.py` (the document\'s "full pipeline" and its quick run\'s command)',
           verdict='different',
           why='not built: at fed1dcd the script imports `vistadream.api.vistadream_pipeline`, which the '
                'repository removed in 93485a6 ("remove VistaDreamPipeline", its work folded into '
                '`SingleImagePipeline`), so the command fails to import there; `pixi run example` runs '
                '`tools/run_single_img.py`, which is this pipeline. The removed pipeline was the earlier form of '
                'the coarse expansion (every fifth of `n_frames × 6` poses filled and trained 512 steps, where '
                "`_coarse` picks poses by their holes): the quick run's nearest here is `stage: coarse`, `nFrames: "
                '10`, `expansionPercent: 0.2`'),
    LabRow('outpaint',
           lab="`SingleImageConfig.expansion_percent` 0.3 (the document's quick run passes `--expansion-percent "
                '0.2`, the default of the full pipeline the repository removed)',
           field='expansionPercent',
           lab_value=0.3,
           why='half on each side (`add_border_and_mask`)'),
    LabRow('outpaint',
           lab='`process_image` to `max_resolution` (`512`; choices 512, 1024, 1920), multiples of 32',
           field='maxResolution',
           lab_value=512,
           why="`SingleImageConfig.max_resolution`; the lab's document runs its CLIs without `--max-resolution`"),
    LabRow('outpaint',
           lab='`FluxInpainting` (FLUX.1 Fill)',
           field='fluxFillModel',
           lab_value='black-forest-labs/FLUX.1-Fill-dev',
           why='from the model location'),
    LabRow('outpaint',
           lab='`FluxInpaintingConfig()`: 25 steps',
           field='fluxSteps',
           lab_value=25,
           why='the pipeline builds its `FluxInpainting` with the default config, so its own `num_steps` never '
                'reaches the fill: every fill (the outpainting and each coarse view) runs 25 steps'),
    LabRow('outpaint',
           lab='`FluxInpaintingConfig()`: guidance 30',
           field='fluxGuidance',
           lab_value=30.0),
    LabRow('outpaint',
           lab='`FluxInpaintingConfig()`: `offload: True` (the FLUX transformer moved to the GPU and back around '
                'every fill)',
           verdict='different',
           why="how the lab's script runs, not what it makes: genfab keeps the model on the GPU "
                '(`stages.outpaint.offload: group` for 24-48 GB GPUs)'),
    LabRow("outpaint", lab="the fill's empty prompt (`prepare_fill_empty_prompt`)", field="fluxPrompt", lab_value=""),
    LabRow("outpaint", lab="BFL's FLUX code, eager, under bf16 autocast", field="fluxRuntime",
           verdict="faster, same fills (up to floating-point order)",
           why="run-time options (out of the hash): `compile: blocks` replays each step as one CUDA graph; `fp8` "
               "and `firstBlockCache` change the output a little and are off"),
    LabRow("outpaint", lab="`FluxInpaintingConfig.seed` 42 for every fill", field="seed", verdict="different",
           why="each fill's noise derives from `seed`, the sample and the view, so two scenes or two views "
               "never share a fill's noise, where the lab's script draws every fill from the same 42 (no "
               "value of `seed` gives the lab's noise: genfab's FluxFill draws it through diffusers)"),
    LabRow('depth',
           lab='MoGe v1 (`MogeV1Predictor`: depth, `K_33`, confidence)',
           field='depthBackend',
           lab_value='moge',
           why="genfab's adapter runs MoGe's own code from `mogeImage` (built from `images/moge/`, MoGe at a "
                'pinned commit): without it the depth and coarse stages are refused in one line naming both fixes '
                "(set `mogeImage`, or `depthBackend: depth-pro`, Depth Pro in genfab's own images, metric depth, "
                "about 0.8 s a pass against MoGe's 0.06 s); each sample's `depth.json`, `summary.json`'s and the "
                "status's `producedBy` (both executors) say which model made its depth"),
    LabRow('depth',
           lab='MoGe v1 ViT-L weights',
           field='mogeModel',
           lab_value='Ruicheng/moge-vitl',
           why="a folder with `model.pt` under the model location (the hub repository's layout)"),
    LabRow('depth',
           lab='`dpt_conf_mask`: where the depth is confident',
           verdict='same with `moge`, different otherwise',
           why="`moge`: MoGe's mask (`infer`'s `mask`; the depth itself stays dense). Depth Pro and Depth Anything"
                ' return no confidence: the mask is then "valid depth" (`depth.json` `dptConfMask`), never a '
                'made-up confidence'),
    LabRow('depth',
           lab="the input frame's `inpaint_wo_edge`: every pixel off a depth edge (`~edges`), the confidence "
               "kept as `dpt_conf_mask` alone; the outpaint frame's: the border off edges and confident",
           genfab='`inpaint_wo_edge`, `dpt_conf_mask` in `frames.npz`',
           verdict='same',
           why="so a scene whose depth model trusts no pixel of the input still starts from the input's "
                "pixels, as the lab's does (`stage: no-outpaint` too)"),
    LabRow('depth',
           lab="MoGe's `K_33` and depth",
           verdict='same with `moge`',
           why="MoGe's intrinsics (normalised by the image size) times (W, H), principal point at the centre; its "
                "scale-invariant depth, as the lab's script's predictor returns it"),
    LabRow('depth',
           lab='`frames.npz`: `rgb` float32 in [0, 1], `dpt` metres, `K_33`, `cam_T_world` camera-to-world, the '
                'masks',
           genfab='`frames.npz`',
           verdict='same with `depth-pro` and `depth-anything-v2` (metric), different with `moge`',
           why='written exactly so (genfab converts at the boundary, once); a test reprojects a pixel with numpy '
                "and the lab's script's contract alone. Under `moge`, `dpt` is MoGe v1's scale-invariant depth, as "
                "the lab's own predictor returns it: not metres"),
    LabRow("depth", lab="MoGe v1 only", field="depthProModel", verdict="genfab's own",
           why="the model of `depthBackend: depth-pro`"),
    LabRow("depth", lab="MoGe v1 only", field="depthAnythingModel", verdict="genfab's own",
           why="the model of `depthBackend: depth-anything-v2`"),
    LabRow("depth", lab="MoGe installed with the script's environment", field="mogeImage", verdict="genfab's own",
           why="the stage image with MoGe's code at a pinned commit (`images/moge/`); unset, `moge` is refused "
               "in one line naming both fixes"),
    LabRow("depth", lab="MoGe predicts its field of view", field="focalPriorFov", verdict="genfab's own",
           why="the field of view a backend without one assumes (Depth Anything); MoGe and Depth Pro predict theirs"),
    LabRow('gaussians',
           lab='`GS_Train_Tool` 100 iterations after the two frames',
           field='initIterations',
           lab_value=100),
    LabRow('coarse',
           lab="`--n-frames 10`: the scene's frames after expansion, `n_frames - 2` views added",
           field='nFrames',
           lab_value=10,
           why="the input and outpainting views count, as in `_coarse`'s `range(n_frames - 2)`"),
    LabRow('coarse',
           lab='`spiral`',
           field='trajType',
           lab_value='spiral'),
    LabRow('coarse',
           lab='`Gaussian_Scene.traj_forward_ratio` 0.3',
           field='trajForwardRatio',
           lab_value=0.3),
    LabRow('coarse',
           lab='`Gaussian_Scene.traj_backward_ratio` 0.4',
           field='trajBackwardRatio',
           lab_value=0.4),
    LabRow('coarse',
           lab='`Gaussian_Scene.traj_max_percentage` 50 (and `traj_min_percentage` 5)',
           field='trajMaxPercentage',
           lab_value=50.0,
           why="the scene's extent is the spread between the two percentiles of its points"),
    LabRow('coarse',
           lab='`n_frames * coarse_dense_multiplier` candidates',
           field='coarseDenseMultiplier',
           lab_value=10,
           why="`n_frames * 10` in `_coarse`; the lab's document makes it a setting"),
    LabRow('coarse',
           lab='`0.25`',
           field='coarseMaxInpaintRatio',
           lab_value=0.25),
    LabRow('coarse',
           lab='`0.05`',
           field='coarseMinInpaintRatio',
           lab_value=0.05),
    LabRow('coarse',
           lab='`1`',
           field='coarseAdjacentExclusion',
           lab_value=1),
    LabRow('coarse',
           lab='optional `closest`',
           field='coarseFallbackMode',
           lab_value='none'),
    LabRow('coarse',
           lab="`pose_to_frame(..., margin=32)`: a candidate view is the first frame's width and height plus "
                '`margin`, once, principal point at the centre',
           field='coarseMargin',
           lab_value=32,
           why="a sum off FluxFill's 32-pixel grid (a margin that is not a multiple of 32) is rounded up to it; "
                "the lab's fill pads to 16 itself. Until this round genfab added the margin on every side (views "
                "twice as grown): coarse samples committed before are made again (the stage's revision 2)"),
    LabRow('coarse',
           lab='`True`',
           field='coarsePrintSummary',
           lab_value=True,
           why='the `[COARSE] Summary` and the `[COARSE][DIAG]` failure diagnostic'),
    LabRow('coarse',
           lab="`GS_Train_Tool` 500 iterations per added frame, of that frame's Gaussians (the others' gradients "
                'are off)',
           field='coarseIterations',
           lab_value=500,
           why='each training moves only the Gaussians its view added (genfab trained every Gaussian until this '
                "was found; coarse samples committed before are made again: the stage's revision 1)"),
    LabRow('render',
           lab='`_render_splats`: `min(len(frames) * 25 if len(frames) > 2 else 150, 150)` frames',
           field='renderFrames',
           lab_value=150,
           why='the same rule with `renderFrames` for 150: a scene of one or two frames (`no-outpaint`, '
                '`outpaint`, `fine`, or a coarse run that added no view) renders all 150, one of three or more 25 '
                'per frame. Until this round genfab rendered 25 per frame at every size (25 or 50 for the small '
                "scenes): render samples committed before are made again (the stage's revision 1)"),
    LabRow('render',
           lab='`--export-gaussians-ply-path`: a `.ply` file, or a folder that gets `gf.ply`',
           field='plyName',
           lab_value='gf.ply',
           why="the same rule, inside the sample's folder"),
    LabRow('render',
           lab='Rerun recording: tabs Initialization, Coarse Scene, Final Scene',
           genfab='`scene.rrd`, `Initialization`, `Coarse Scene`, `Final Scene`',
           verdict='same'),
    LabRow('gaussians',
           lab="(the lab's DiFix scripts) DiFix checkpoints for 3DGS refinement",
           verdict='different',
           why='refused here: Difix3D+ fixes views at `fixSteps` of a long 3DGS training and vistadream grows its '
                "scene by short trainings; worldexplorer's gaussians stage takes them"),
)

# The block with its required settings given: the others are the defaults the table states.
COMPARISON = LabComparison(
    VistaDreamConfig, {},
    "lab's pipeline", ROWS, prefix='vistadream', page='docs/pipelines/vistadream.md')
