"""DatasetJob `relighting` (the lab's relighting): segment -> albedo -> degrade -> recombine -> (caption) -> organize.

The pipeline is declared in genfab.api.pipelines.relighting. Importing this package imports nothing
(no numpy, OpenCV or torch); each stage module is imported when its stage runs.
"""
