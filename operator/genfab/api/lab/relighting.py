"""relighting's comparison with the lab's code (`genfab.api.fidelity`): the page's table."""

from __future__ import annotations

from genfab.api.fidelity import LabComparison, LabRow
from genfab.api.relighting import RelightingConfig

ROWS = (
    LabRow('segment',
           lab='SAM3, falls back to SAM2 if SAM3 is unavailable',
           field='segmentation.backends',
           lab_value=['sam3', 'sam2'],
           why='the CPU backends run only when listed: `selfie` (a learned person model shipped with genfab, '
                'OpenCV; the CPU example lists it) and `classical` (OpenCV cascades + GrabCut, no learned model). A'
                " backend that cannot run is named in the stage's status and in each sample's "
                '`unavailableBackends`.'),
    LabRow('segment',
           lab='the fallback is for an unavailable SAM3',
           field='segmentation.fallbackOnEmpty',
           lab_value=False,
           why="`true` also hands an image SAM3 finds nobody in to SAM2 (per image; each sample's `backend` says "
                'which made its mask)'),
    LabRow('segment',
           lab='"person"',
           field='segmentation.textPrompt',
           lab_value='person'),
    LabRow('segment',
           lab='SAM3',
           field='segmentation.sam3Model',
           lab_value='facebook/sam3',
           why='loaded from the model location (`spec.models`), never downloaded'),
    LabRow('segment',
           lab='SAM2',
           field='segmentation.sam2Model',
           lab_value='facebook/sam2.1-hiera-large',
           why="SAM2 is prompted by a detector box (`detectorModel`); the script's prompt for SAM2 is not "
                'documented'),
    LabRow('segment',
           lab='binary mask, white = person; foreground: the person; background: the original background without '
                'the person',
           genfab='`data/stage_1/{id}_{foreground,background,mask}.png`',
           verdict='same',
           why='`_mask.png` 0/255; `_foreground.png` holds every mask pixel with a feathered alpha (above 0 '
                'exactly on the mask); `_background.png` blacks out every mask pixel'),
    LabRow("segment", lab="SAM2's prompt is not documented", field="segmentation.detectorModel", verdict="not stated",
           why="an open-vocabulary detector's box (Grounding DINO, or OWLv2) for `textPrompt` prompts SAM2"),
    LabRow("segment", lab="not documented", field="segmentation.boxThreshold", verdict="not stated",
           why="the detector's score threshold, Grounding DINO's usual 0.3"),
    LabRow("segment", lab="a binary mask", field="segmentation.maskThreshold", verdict="not stated",
           why="SAM's mask probability cut at 0.5, its own post-processing default"),
    LabRow("segment", lab="the backend's mask as it is", field="segmentation.cleanup", verdict="genfab's own",
           why="background the mask encloses is filled and specks under 10 % of the largest region dropped; "
               "`fillEnclosed: false` and `minComponentShare: 0` keep the backend's mask as it is"),
    LabRow("segment", lab="SAM3 eager", field="segmentation.compile", lab_value=False,
           why="`true` compiles SAM3's encoders and decoder on CUDA (a minute per shard, then faster)"),
    LabRow('albedo',
           lab='IntrinsicAnything (off), Multi-Scale Retinex (80 %), LAB (always)',
           field='albedo.methods',
           lab_value=[{'name': 'retinex', 'probability': 0.8}, {'name': 'lab', 'probability': 1.0}],
           why='IntrinsicAnything runs as an albedo plug-in backend (`genfab.albedo_backends` entry point, with '
                '`intrinsicAnythingCheckpoint`): genfab ships none, so listing it needs a plug-in installed in the '
                'image'),
    LabRow('albedo',
           lab='[15, 80, 250]',
           field='albedo.retinexScales',
           lab_value=[15.0, 80.0, 250.0],
           why="the seed names Multi-Scale Retinex with these scales; genfab's runs on the CIELAB lightness with "
                "each pixel's hue kept and the lift bounded; the variant is recorded per sample"),
    LabRow('albedo',
           lab='15-25 % of the original mixed in',
           field='albedo.blend',
           lab_value={'min': 0.15, 'max': 0.25}),
    LabRow("albedo", lab="IntrinsicAnything disabled by default, requires a checkpoint",
           field="albedo.intrinsicAnythingCheckpoint", lab_value=None,
           why="used by an albedo plug-in backend (`genfab.albedo_backends`) that runs IntrinsicAnything"),
    LabRow('degrade',
           lab='80 %',
           field='degradation.weights.softShading',
           lab_value=0.8,
           why="weights are relative, as the script's: with the others at 0, every pair is soft shading"),
    LabRow('degrade',
           lab='0 % (disabled)',
           field='degradation.weights.hardShadow',
           lab_value=0.0,
           why='Perlin, geometric and blob patterns when enabled'),
    LabRow('degrade',
           lab='0 % (disabled)',
           field='degradation.weights.specular',
           lab_value=0.0,
           why='soft shading plus Phong highlights when enabled'),
    LabRow('degrade',
           lab='advanced shading 0 % (disabled)',
           verdict='not built',
           why='disabled in the script; no description of it to follow'),
    LabRow('degrade',
           lab='—',
           field='degradation.weights.ambientOnly',
           verdict="genfab's own",
           why='uniform darkening without a light direction; off unless set'),
    LabRow('degrade',
           lab='MiDaS depth',
           field='degradation.softShading.normals',
           lab_value='midas',
           why='`depth-anything`, `dpt` and `classical` (the silhouette inflated, CPU) are options; a named model '
                'without weights stops the stage; `auto` falls back to classical and says so per sample'),
    LabRow('degrade',
           lab='MiDaS',
           field='degradation.softShading.midasModel',
           verdict='same model family',
           why="MiDaS v3 (DPT-Hybrid) through transformers; the script's exact MiDaS variant is not documented"),
    LabRow('degrade',
           lab='0.6-0.85',
           field='degradation.softShading.ambient',
           lab_value={'min': 0.6, 'max': 0.85}),
    LabRow('degrade',
           lab='adds subtle shadow patterns',
           field='degradation.softShading.shadowPatterns',
           lab_value=True),
    LabRow("degrade", lab="MiDaS depth for the normals", field="degradation.softShading.depthModel",
           verdict="genfab's own", why="the depth model of the `depth-anything` and `dpt` normals, options beside "
                                       "the lab's MiDaS"),
    LabRow("degrade", lab="Perlin noise, geometric shapes, blob shadows (hard shadow disabled)",
           field="degradation.hardShadow.patterns", lab_value=["perlin", "geometric", "blob"]),
    LabRow("degrade", lab="not documented (hard shadow disabled)", field="degradation.hardShadow.strength",
           verdict="not stated", why="how dark a shadow is, drawn per sample from 0.3-0.7"),
    LabRow("degrade", lab="`I_spec = (R·V)^shininess` (specular disabled)", field="degradation.specular",
           verdict="not stated", why="shininess drawn from 8-64 and strength from 0.1-0.4 per sample; the "
                                     "document gives Phong's formula, not its ranges"),
    LabRow('recombine',
           lab='`degraded × mask + background × (1 − mask)`',
           field='composite',
           lab_value='binary',
           why="every mask pixel is the relit person's (no zeroed outline), every other pixel the input's bytes; "
                '`soft` blends the relit person into the input picture with the feathered alpha instead'),
    LabRow('caption',
           lab='exists, disabled in the MVP config',
           field='captioning.enabled',
           lab_value=False),
    LabRow("caption", lab="captioning exists, disabled; its model is not documented", field="captioning.backend",
           verdict="not stated", why="an image-to-text model through transformers when enabled, or a plug-in"),
    LabRow("caption", lab="not documented", field="captioning.model", verdict="not stated",
           why="BLIP base from the model location when enabled"),
    LabRow('organize',
           lab='`data/raw/` (inputs), `data/outputs/{id}_{input,albedo,output,foreground}.png`, '
                '`{id}_metadata.json`',
           genfab='`data/raw/{source}`, '
                   '`data/outputs/{id}_{input.png,albedo.png,output.png,foreground.png,metadata.json}`',
           verdict='same',
           why='`data/raw/` gets a byte copy of each input; `{id}_input.png` is the original at its own size, with'
                ' `{id}_input_working.png` beside it when `input.maxSide` made the pipeline work smaller; the '
                'metadata also records what produced each output (backend, model, method, normals)'),
    LabRow("organize", lab="every pair the script makes is kept", field="quality", verdict="different",
           why="the default quality bounds (the figures table above, its last column) drop a pair the script "
               "would keep, with `QualityOutOfRange` in the report and `dropped_samples.csv`; naming a figure "
               "with neither `min` nor `max` (`quality: {maskArea: {}}`) lifts its bound"),
    LabRow('run',
           lab='`--num-samples` (all when not given)',
           field='numSamples',
           lab_value=None,
           why='inputs in sorted order'),
    LabRow("run", lab="the input images, `data/raw/`", field="input.uri", verdict="same",
           why="any folder or object-storage prefix; `organize` copies each input, bytes unchanged, to the "
               "output's `data/raw/`"),
    LabRow("run", lab="every image (or the first `--num-samples`)", field="input.sampleIds", verdict="genfab's own",
           why="only the images named; unset takes them all, as the script does"),
    LabRow("run", lab="each image at its own size", field="input.maxSide", verdict="genfab's own",
           why="a larger input is downscaled to 2048 px on its longer side before segmentation, so one photo "
               "cannot take a worker's memory; `{id}_input.png` stays the original"),
    LabRow("run", lab="random choices unseeded", field="seed", verdict="genfab's own",
           why="each sample's choices (albedo method, blend, light) derive from it and the sample id: a run "
               "repeats exactly"),
)

# The block with its required settings given: the others are the defaults the table states.
COMPARISON = LabComparison(
    RelightingConfig, {"input": {"uri": "file:///inputs"}},
    "lab's script", ROWS, prefix='relighting', page='docs/pipelines/relighting.md')
