"""solo-coplugin's imagenet pretraining configs (a package so that Hydra's pkg:// can load them)."""
