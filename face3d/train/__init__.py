"""Training of the regression network: synthetic data (:mod:`~face3d.train.data`,
:mod:`~face3d.train.profile`), training (:mod:`~face3d.train.regressor`), the AFLW fine-tune
(:mod:`~face3d.train.aflw`, :mod:`~face3d.train.finetune`, :mod:`~face3d.train.negatives`,
:mod:`~face3d.train.convention`), growing (:mod:`~face3d.train.grow`) and weight averaging
(:mod:`~face3d.train.average`); :mod:`~face3d.train.commands` is ``face3d train regressor``.

Imported only by ``face3d train`` and ``scripts/rebuild``; inference never imports it.
"""
