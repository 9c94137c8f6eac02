"""Stand-in of sam2 1.1.0 (see ../README.md): the model classes a SAM2 config instantiates and
`SAM2ImagePredictor`."""
