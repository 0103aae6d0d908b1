"""Fixed sets of names the command line offers: precisions and sparsity measures.

They live apart from the code that uses them (:mod:`ffcore.precision`,
:mod:`ffcore.analysis`, both importing torch) so that options, ``--help`` and shell
completion can list them without importing torch.
"""

from __future__ import annotations

#: Numeric precisions: ``fp32``, or ``bf16`` (mixed precision, see :mod:`ffcore.precision`).
PRECISION_NAMES: tuple[str, ...] = ("fp32", "bf16")
#: Sparsity measures :func:`ffcore.analysis.sparsity` computes.
SPARSITY_KINDS: tuple[str, ...] = ("hoyer", "l1-entropy", "l2-entropy", "gini")
