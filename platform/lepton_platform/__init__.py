"""The Lepton platform service and its embedded backend (one machine, no Kubernetes).

The package is `lepton_platform`, never `platform`, which is a standard-library module.
"""
