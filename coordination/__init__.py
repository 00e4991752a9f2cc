"""Coordination between decisions and replicas: per-customer locks and shared volume budgets."""
