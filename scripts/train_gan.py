"""Train the DefGAN generators: ``python scripts/train_gan.py texture|deform --out RUN_DIR [...]``.

The same job as ``face3d train texture|deform`` (both call
:func:`editing.gan.command.train_generators`); see ``python scripts/train_gan.py -h``.
"""

from __future__ import annotations

import sys

from face3d.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
