"""Networks of the method: branch generators (G_A, G_V), fusion generator (G), discriminator (D)."""
from model.discriminator import Discriminator
from model.generators import BranchGenerator, FusionGenerator
from model.original_keys import is_original_state_dict, map_original_state_dict

__all__ = [
    "BranchGenerator",
    "Discriminator",
    "FusionGenerator",
    "is_original_state_dict",
    "map_original_state_dict",
]
