"""Incidents: declare, acknowledge, update, resolve, post-mortem — on PagerDuty or locally."""
