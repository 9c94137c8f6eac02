"""A pipeline defined only under tests/ (one module plus one stage): it proves that adding a pipeline
needs no edit anywhere else. Load it with `GENFAB_PIPELINES=tests.toy_pipeline.pipeline`."""
