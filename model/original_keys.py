"""Load checkpoints written by the original research code.

The original modules used other attribute names (``double_conv.3``, ``conv_bottom.single_conv``,
``S1.side_block_1.block.1`` ...). :func:`map_original_state_dict` renames such a state dict to this
project's names; the weights themselves are unchanged. The rules, applied in order:

=====================================  ======================================
original                               this project
=====================================  ======================================
``module.`` prefix (DataParallel)      removed
``inc.`` / ``downK.`` (K = 1..4)       ``encoder.inc.`` / ``encoder.downK.``
``downK.maxpool_conv.1.``              ``downK.conv.``
``double_conv.0`` / ``.1``             ``conv1.0`` / ``conv1.1`` (conv, BN)
``double_conv.3`` / ``.4``             ``conv2.0`` / ``conv2.1``
``conv_bottom.single_conv.``           ``bottom.``
``add.activation.0.``                  ``pair_act.0.`` (the shared pair BN)
``upK.`` in G_A, G_V and G             ``decoder.upK.`` (D keeps ``upK.``)
``SK.side_block_J.block.1`` / ``.2``   ``sideK.blocks.(J-1).conv`` / ``.bn``
``SK.side_output.``                    ``sideK.head.``
``outc.conv.``                         ``head.``
=====================================  ======================================
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import torch

_RULES: list[tuple[str, str | Callable[[re.Match[str]], str]]] = [
    (r"^module\.", ""),
    (r"^(inc|down[1-4])\.", r"encoder.\1."),
    (r"\.maxpool_conv\.1\.", ".conv."),
    (r"double_conv\.0\.", "conv1.0."),
    (r"double_conv\.1\.", "conv1.1."),
    (r"double_conv\.3\.", "conv2.0."),
    (r"double_conv\.4\.", "conv2.1."),
    (r"conv_bottom\.single_conv\.", "bottom."),
    (r"\.add\.activation\.0\.", ".pair_act.0."),
    (r"^S([1-3])\.side_block_([1-3])\.block\.1\.", lambda m: f"side{m[1]}.blocks.{int(m[2]) - 1}.conv."),
    (r"^S([1-3])\.side_block_([1-3])\.block\.2\.", lambda m: f"side{m[1]}.blocks.{int(m[2]) - 1}.bn."),
    (r"^S([1-3])\.side_output\.", r"side\1.head."),
    (r"^outc\.conv\.", "head."),
]


def map_original_key(key: str, generator: bool) -> str:
    """Rename one original state-dict key; ``generator`` is True for G_A, G_V and G (not D)."""
    for pattern, repl in _RULES:
        key = re.sub(pattern, repl, key)
    if generator:
        key = re.sub(r"^(up[1-4])\.", r"decoder.\1.", key)
    return key


def is_original_state_dict(state: Mapping[str, torch.Tensor]) -> bool:
    """True when the keys look like the original code's (e.g. ``inc.double_conv.0.weight``)."""
    return any("double_conv" in k or k.startswith(("outc.", "module.")) for k in state)


def map_original_state_dict(state: Mapping[str, torch.Tensor], generator: bool = True) -> dict[str, torch.Tensor]:
    """Return ``state`` (an original-code state dict) with this project's key names, in order."""
    mapped = {map_original_key(k, generator): v for k, v in state.items()}
    if len(mapped) != len(state):
        raise ValueError("two original keys mapped to the same name; is this an original checkpoint?")
    return mapped
