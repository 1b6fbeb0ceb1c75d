"""solo-coplugin's imagenet-100 pretraining configs (a package so that Hydra's pkg:// can load them)."""
