"""RetrainStack: the retrain function of this environment's build, for the endpoints its registry feeds."""

from __future__ import annotations

from collections.abc import Sequence

from constructs import Construct

from stacks.config import EnvironmentConfig
from stacks.foundation.stack import FoundationStack
from stacks.platform_stack import PlatformStack
from stacks.retrain.retrain import ModelRetrain


class RetrainStack(PlatformStack):
    """``<prefix>-retrain``, in an environment whose ``deploy.stages`` include monitored endpoints."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        foundation: FoundationStack,
        stages: Sequence[EnvironmentConfig],
    ) -> None:
        super().__init__(
            scope, id_, config=config, description=f"AWS-MLOps {config.name}: retrain on monitoring alarms"
        )
        keys = foundation.keys
        self.retrain = ModelRetrain(
            self, "ModelRetrain", config=config, stages=stages, data_key=keys.data_key, logs_key=keys.logs_key
        )
