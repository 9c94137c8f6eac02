"""DatasetJob `reference-object` (seed 004): one reference image -> white background -> perspectives
-> scene prompts -> scenes [-> Qwen augmentation] -> PerSAM + SAM2 annotation -> YOLO dataset
[-> CV augmentation]."""
