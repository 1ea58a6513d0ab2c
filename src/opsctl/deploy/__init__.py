"""Deploys: canary and blue/green rollouts on Kubernetes, judged by Prometheus."""
