"""The warnings that importing solo-learn prints and that no user of solo-coplugin can act on.

Importing solo-learn imports Lightning 2.1.2 (``import pkg_resources``, deprecated since
setuptools 81), timm (its pre-1.0 module paths, which solo-learn still uses), registers its own
ConvNeXt and PoolFormer models over timm's, and decorates functions with
``torch.cuda.amp.custom_fwd``. Each emits a warning at import time, about 25 lines before a
command's ``--help``. :func:`ignoring_known_import_warnings` hides exactly these messages, only
while solo-learn is imported: every other warning, and any of these raised later, stays visible.
"""

import contextlib
import re
import warnings
from typing import Iterator, Tuple, Type

#: (message regex, category) of each known import-time warning of solo-learn's dependencies
KNOWN_IMPORT_WARNINGS: Tuple[Tuple[str, Type[Warning]], ...] = (
    # Lightning 2.1.2's `import pkg_resources` (a UserWarning since setuptools 80)
    (r"pkg_resources is deprecated as an API", Warning),
    # solo-learn imports timm.models.helpers, .layers, .registry and timm.optim.optim_factory
    (r"Importing from timm\.\S+ is deprecated", FutureWarning),
    # solo-learn registers its ConvNeXt and PoolFormer variants under timm's names, on purpose
    (r"Overwriting \S+ in registry with solo\.", UserWarning),
    # solo.utils.whitening decorates with torch.cuda.amp.custom_fwd
    (re.escape("`torch.cuda.amp.custom_fwd(args...)` is deprecated"), FutureWarning),
    (re.escape("`torch.cuda.amp.custom_bwd(args...)` is deprecated"), FutureWarning),
)


@contextlib.contextmanager
def ignoring_known_import_warnings() -> Iterator[None]:
    """Hides the known import-time warnings of solo-learn's dependencies inside the block.

    The filters are restored on exit, so only the imports run inside the block are quieted.
    """

    with warnings.catch_warnings():
        for message, category in KNOWN_IMPORT_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        yield
