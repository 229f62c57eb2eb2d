"""The `lepton` command line (contract 2 in ARCHITECTURE.md)."""
