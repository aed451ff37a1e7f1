"""journey's tests: unit/ (no broker, no worker process), kafka/ (start the embedded broker or
a worker), deploy/ (deploy files, Prometheus rules, docs); support/ holds their helpers and
fixtures, registered in conftest.py."""
