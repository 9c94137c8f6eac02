"""The scene library: what the two scene pipelines (vistadream, worldexplorer) share. Frames and
their `frames.npz` (`frames`), cameras and depth masks (`geometry`), aligning a predicted depth to a
render (`align`), the depth models (`depth`), the Gaussian scene grown frame by frame (`growing`) and
how a scene crosses stage boundaries (`io`)."""
