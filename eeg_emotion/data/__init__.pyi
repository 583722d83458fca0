from .dataset import Collator, TokenDataset, loaders, model_inputs
from .labels import class_names, discretize
from .pipeline import TokenData, build
from .preprocessor import Preprocessor
from .splits import load_split, make_split, save_split
from .synthetic import SyntheticSpec, synthesize
from .tokenize import build_tokenizer

__all__ = [
    "Collator",
    "Preprocessor",
    "SyntheticSpec",
    "TokenData",
    "TokenDataset",
    "build",
    "build_tokenizer",
    "class_names",
    "discretize",
    "load_split",
    "loaders",
    "make_split",
    "model_inputs",
    "save_split",
    "synthesize",
]
