"""Data tools, the ``solo-co-data`` command: ``check`` opens every image of a folder as the data
loader will (:mod:`.image_check`); ``tiny-imagenet`` turns a Tiny-ImageNet download into an
ImageFolder (:mod:`.tiny_imagenet`). :mod:`.loader_errors` names a file the data loader cannot
read during a CO run."""
