"""SageMaker Model Monitor's analyzer image, by region, written down so that synth needs no lookup.

The accounts are the SageMaker Python SDK's (``image_uri_config/model-monitor.json``); a test
compares this table with the installed SDK's ``image_uris.retrieve("model-monitor", region)``.
"""

from __future__ import annotations

from stacks.config import ecr_registry

REPOSITORY = "sagemaker-model-monitor-analyzer"
REGISTRIES: dict[str, str] = {
    "af-south-1": "875698925577",
    "ap-east-1": "001633400207",
    "ap-northeast-1": "574779866223",
    "ap-northeast-2": "709848358524",
    "ap-northeast-3": "990339680094",
    "ap-south-1": "126357580389",
    "ap-southeast-1": "245545462676",
    "ap-southeast-2": "563025443158",
    "ap-southeast-3": "669540362728",
    "ca-central-1": "536280801234",
    "cn-north-1": "453000072557",
    "cn-northwest-1": "453252182341",
    "eu-central-1": "048819808253",
    "eu-central-2": "590183933784",
    "eu-north-1": "895015795356",
    "eu-south-1": "933208885752",
    "eu-south-2": "437450045455",
    "eu-west-1": "468650794304",
    "eu-west-2": "749857270468",
    "eu-west-3": "680080141114",
    "il-central-1": "843974653677",
    "me-central-1": "588750061953",
    "me-south-1": "607024016150",
    "sa-east-1": "539772159869",
    "us-east-1": "156813124566",
    "us-east-2": "777275614652",
    "us-west-1": "890145073186",
    "us-west-2": "159807026194",
}


def model_monitor_image(region: str) -> str:
    """The analyzer image of ``region``.

    Raises:
        ValueError: no image is known for that region (Model Monitor may not be offered there).
    """
    if region not in REGISTRIES:
        raise ValueError(
            f"monitoring.engine model_monitor: no Model Monitor image is known for {region} "
            f"(regions: {', '.join(sorted(REGISTRIES))}); use engine platform there"
        )
    return f"{ecr_registry(REGISTRIES[region], region)}/{REPOSITORY}"
