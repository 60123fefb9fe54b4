"""The platform's own drift and quality check: Model Monitor's checks and file formats, computed exactly.

    python -m ml_code.monitor --baseline DIR --data PATH --output DIR [--ground-truth PATH] [--problem-type T]

- ``reference``: the registered baseline (statistics.json, constraints.json) read back;
- ``batch``: captured records (SageMaker's data-capture JSONL) or a plain CSV, read into column profiles;
- ``distance``: exact L-infinity distances, and Model Monitor's robust correction;
- ``data_quality``: Model Monitor's six data-quality checks;
- ``model_quality``: ground truth joined by inferenceId/eventId, metrics, comparison with the evaluation;
- ``capture``: the data-capture format, and a writer for servers that are not SageMaker endpoints;
- ``run``: one run, writing Model Monitor's output files.
"""

from ml_code.monitor.capture import CaptureWriter
from ml_code.monitor.errors import MonitorInputError
from ml_code.monitor.run import MonitorReport, monitor

__all__ = ["CaptureWriter", "MonitorInputError", "MonitorReport", "monitor"]
