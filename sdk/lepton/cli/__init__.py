"""The `lepton` command line: `main.py` builds the app from the commands of one module per
area (`platform`, `knative`, `build`, `buckets`, `events`, `secrets`, `keys`, `jobs`)."""
