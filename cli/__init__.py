"""The `lead` command line (installed as `lead_ray.cli`). Thin: parse, load config, call one
library function."""
