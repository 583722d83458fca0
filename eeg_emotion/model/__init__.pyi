from .backbone import load_backbone
from .classifier import EEGEmotionClassifier, is_lora_param, make_optimizer
from .embedding import EEGEmbedding, InputSpec
from .plan import Plan, flops_per_token, plan
from .pooling import mean_max_pool

__all__ = [
    "EEGEmbedding",
    "EEGEmotionClassifier",
    "InputSpec",
    "Plan",
    "flops_per_token",
    "is_lora_param",
    "load_backbone",
    "make_optimizer",
    "mean_max_pool",
    "plan",
]
