"""The built-in pipelines, one module each (a module defining `PIPELINE` is registered; modules
starting with `_` hold what several pipelines share). See genfab.api.pipeline."""
