"""Checks of deploy/ (compose, k8s, Dockerfile, Prometheus rules, dashboard) and docs/."""
