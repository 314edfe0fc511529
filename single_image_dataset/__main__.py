"""``python -m single_image_dataset``: the same as the ``single-image-dataset`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
