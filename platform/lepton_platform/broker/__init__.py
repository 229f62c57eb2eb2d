"""The embedded CloudEvents broker (durable, at-least-once), its triggers and sources."""

from lepton_platform.broker.broker import Broker

__all__ = ["Broker"]
