"""The local scheduler: planning against the cache, placing jobs on GPUs, running and recording them."""
