"""An endpoint's monitoring: both engines, the results as metrics, alarms, the dashboard, the way to retrain."""
