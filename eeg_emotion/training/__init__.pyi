from .checkpoint import RunState, latest_checkpoint, save_checkpoint
from .run_folder import RunLock, check_relaunch
from .stopping import StopRequest
from .tracking import MetricsLog, Throughput
from .trainer import Outcome, Trainer, main

__all__ = [
    "MetricsLog",
    "Outcome",
    "RunLock",
    "RunState",
    "StopRequest",
    "Throughput",
    "Trainer",
    "check_relaunch",
    "latest_checkpoint",
    "main",
    "save_checkpoint",
]
