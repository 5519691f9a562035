"""Usage monitoring: anomaly detection over the audit trail, alerts and notifications."""
