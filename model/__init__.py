"""Networks of the method: branch generators (G_A, G_V), fusion generator (G), discriminator (D),
in the 2021 paper variant and the authors' 2023 release variant (``model.variants``)."""

from model.discriminator import Discriminator
from model.generators import BranchGenerator, FeatureBranchGenerator, FusionGenerator, MeanFusionGenerator
from model.original_keys import is_original_state_dict, map_original_state_dict
from model.variants import VARIANTS, build_discriminator, build_generators, build_networks, describe_state

__all__ = [
    "VARIANTS",
    "BranchGenerator",
    "Discriminator",
    "FeatureBranchGenerator",
    "FusionGenerator",
    "MeanFusionGenerator",
    "build_discriminator",
    "build_generators",
    "build_networks",
    "describe_state",
    "is_original_state_dict",
    "map_original_state_dict",
]
