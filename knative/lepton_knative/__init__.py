"""Lepton's Knative backend: the same decorated functions as Knative Services, Triggers on a
Broker and PingSources, validated against Knative's own CRD schemas before they are applied."""
