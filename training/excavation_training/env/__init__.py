"""Simulation environments and the batched-env interface."""
