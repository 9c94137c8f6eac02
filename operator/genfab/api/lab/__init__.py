"""Each pipeline next to the lab's code, one module a pipeline (`genfab.api.fidelity`)."""
