"""DatasetJob `reference-object` (the lab's reference-object): one reference image -> white background -> perspectives
-> scene prompts -> scenes [-> Qwen augmentation] -> PerSAM + SAM2 annotation -> YOLO dataset
[-> CV augmentation]."""
