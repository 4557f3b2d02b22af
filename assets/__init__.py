"""Package data of face3d (installed as ``face3d.assets_data``): find files with
:func:`face3d.assets.asset_path`. Each weights folder holds ``config.json``, ``weights.pt`` and the
``COMMAND.txt`` that rebuilt it."""
